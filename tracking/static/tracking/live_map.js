// The staff live map (inside the admin): every working driver and active order, fed by /ws/fleet/.
// Ids are compared as strings everywhere: messages from different producers may carry a driver id as a
// number or a string, and a Map keyed by both would list one driver twice (or miss it).
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("fleet-config").textContent);
  const FINAL = new Set(["delivered", "cancelled"]);
  const COLORS = { available: "#16a34a", busy: "#2563eb", offline: "#6b7280" };
  const STORE = { color: "#0f766e", fill: "#14b8a6" };
  const DESTINATION = { color: "#9a3412", fill: "#f97316" };
  // What each raw status means to a person watching the map.
  const LABELS = {
    available: "Available", busy: "Busy", offline: "Offline",
    reserved: "Reserved", paid: "Waiting for a driver", assigned: "Assigned", picked_up: "Picked up",
    delivered: "Delivered", cancelled: "Cancelled",
  };
  const label = (status) => LABELS[status] || (status ? status.replace(/_/g, " ") : "–");
  const id = (value) => (value === null || value === undefined || value === "" ? null : String(value));
  const shortId = (value) => (value ? value.slice(0, 8) : null);

  const map = L.map("fleet-map", { zoomSnap: 0.25 }); // quarter zoom steps: the fit fills the box
  L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", { maxZoom: 19, attribution: "© OpenStreetMap contributors" })
    .addTo(map);
  map.setView([52.52, 13.405], 12);
  const drivers = new Map(); // driver id (string) -> {data, marker}
  const orders = new Map(); // order id (string) -> {data, layers}
  let fitPending = true; // fit the view to every marker after the first frame (and on the "Fit" button)

  function cell(content, className) {
    const td = document.createElement("td");
    if (content instanceof Node) td.append(content); else td.textContent = content == null ? "–" : content;
    if (className) td.className = className;
    return td;
  }

  function link(text, href, title) {
    const a = document.createElement("a");
    a.textContent = text; a.href = href; if (title) a.title = title;
    return a;
  }

  function ago(iso) {
    if (!iso) return null;
    const seconds = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
    return new Date(iso).toLocaleTimeString();
  }

  function driverName(driverId) {
    const known = driverId && drivers.get(driverId);
    return known ? known.data.name : (driverId ? "driver #" + driverId : null);
  }

  function renderTables() {
    const dBody = document.querySelector("#drivers tbody");
    const driverRows = [...drivers.values()]
      .sort((a, b) => (a.data.name || "").localeCompare(b.data.name || ""))
      .map(({ data }) => {
        const tr = document.createElement("tr");
        tr.dataset.driverId = data.driver_id;
        tr.dataset.status = data.status;
        const swatch = document.createElement("span");
        swatch.className = "swatch"; swatch.style.background = COLORS[data.status] || COLORS.offline;
        const name = document.createElement("span");
        name.append(swatch, " ", link(data.name || "driver #" + data.driver_id, config.driver_url.replace("DRIVER_ID", data.driver_id)));
        const order = data.order_id ? link(shortId(data.order_id), config.order_url.replace("ORDER_ID", data.order_id), data.order_id) : null;
        tr.append(cell(name), cell(label(data.status)), cell(order), cell(data.position ? ago(data.position.recorded_at) : "no position"));
        return tr;
      });
    dBody.replaceChildren(...driverRows);
    const oBody = document.querySelector("#orders tbody");
    oBody.replaceChildren(...[...orders.values()].map(({ data }) => {
      const tr = document.createElement("tr");
      tr.dataset.orderId = data.order_id;
      tr.dataset.status = data.status;
      tr.append(cell(link(shortId(data.order_id), config.order_url.replace("ORDER_ID", data.order_id), data.order_id)),
        cell(label(data.status)), cell(driverName(data.driver_id)),
        cell(data.destination ? data.destination.address : null, "address"));
      return tr;
    }));
    document.getElementById("driver-count").textContent = drivers.size;
    document.getElementById("order-count").textContent = orders.size;
    document.getElementById("drivers-empty").hidden = drivers.size > 0;
    document.getElementById("orders-empty").hidden = orders.size > 0;
  }

  function fitToMarkers() {
    const points = [];
    drivers.forEach(({ marker }) => marker && points.push(marker.getLatLng()));
    orders.forEach(({ data }) => {
      if (data.store) points.push([data.store.lat, data.store.lng]);
      if (data.destination) points.push([data.destination.lat, data.destination.lng]);
    });
    if (!points.length) return false;
    map.invalidateSize(); // the admin's layout may have resized the map's box since Leaflet measured it
    map.fitBounds(L.latLngBounds(points), { padding: [24, 24], maxZoom: 15, animate: false });
    return true;
  }

  function upsertDriver(data) {
    data = { ...data, driver_id: id(data.driver_id), order_id: id(data.order_id) };
    const entry = drivers.get(data.driver_id) || { data: {}, marker: null };
    Object.assign(entry.data, data);
    const p = entry.data.position;
    if (p && Number.isFinite(Number(p.lat)) && Number.isFinite(Number(p.lng))) {
      const latLng = [Number(p.lat), Number(p.lng)];
      const color = COLORS[entry.data.status] || COLORS.offline;
      if (!entry.marker) {
        entry.marker = L.circleMarker(latLng, { radius: 8, color: "#111827", weight: 1, fillColor: color, fillOpacity: 1,
          className: "fleet-driver driver-" + data.driver_id }).addTo(map);
      } else {
        entry.marker.setLatLng(latLng);
        entry.marker.setStyle({ fillColor: color });
      }
      entry.marker.bindTooltip(entry.data.name + " · " + label(entry.data.status));
    }
    drivers.set(data.driver_id, entry);
  }

  function removeOrder(orderId) {
    const gone = orders.get(orderId);
    if (gone) gone.layers.forEach((layer) => layer.remove());
    orders.delete(orderId);
  }

  function upsertOrder(data) {
    data = { ...data, order_id: id(data.order_id), driver_id: id(data.driver_id) };
    if (FINAL.has(data.status)) { removeOrder(data.order_id); return; }
    const entry = orders.get(data.order_id) || { data: {}, layers: [] };
    Object.assign(entry.data, data);
    if (!entry.layers.length && entry.data.store && entry.data.destination) {
      const s = [entry.data.store.lat, entry.data.store.lng], d = [entry.data.destination.lat, entry.data.destination.lng];
      entry.layers = [
        L.polyline([s, d], { color: DESTINATION.fill, weight: 2, dashArray: "4 6" }).addTo(map),
        L.circleMarker(d, { radius: 5, color: DESTINATION.color, fillColor: DESTINATION.fill, fillOpacity: 1,
          className: "fleet-destination" }).bindTooltip(entry.data.destination.address).addTo(map),
        L.circleMarker(s, { radius: 6, color: STORE.color, fillColor: STORE.fill, fillOpacity: 1, className: "fleet-store" })
          .bindTooltip(entry.data.store.name).addTo(map),
      ];
    }
    orders.set(data.order_id, entry);
  }

  function applySnapshot(message) {
    // A snapshot is the whole truth: drop what it no longer lists (a driver gone offline while we were away).
    const listed = new Set(message.drivers.map((d) => id(d.driver_id)));
    drivers.forEach(({ marker }, driverId) => {
      if (!listed.has(driverId)) { if (marker) marker.remove(); drivers.delete(driverId); }
    });
    [...orders.keys()].forEach(removeOrder);
    message.drivers.forEach(upsertDriver);
    message.orders.forEach(upsertOrder);
  }

  document.getElementById("fit-map").addEventListener("click", fitToMarkers);

  let attempt = 0;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + config.ws_path);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      const status = document.getElementById("connection");
      if (message.type === "snapshot") {
        attempt = 0;
        status.dataset.state = "live"; status.textContent = "live";
        applySnapshot(message);
      } else if (message.type === "driver") {
        const { type, lat, lng, recorded_at, heading, speed, ...rest } = message;
        upsertDriver({ ...rest, position: { lat, lng, recorded_at, heading, speed } });
      } else if (message.type === "order") {
        upsertOrder(message);
        const driverId = id(message.driver_id);
        if (driverId && drivers.has(driverId)) {
          drivers.get(driverId).data.order_id = FINAL.has(message.status) ? null : id(message.order_id);
        }
      }
      if (fitPending && fitToMarkers()) fitPending = false;
      renderTables();
    };
    socket.onclose = (event) => {
      const status = document.getElementById("connection");
      if (event.code === 4401 || event.code === 4403) { status.dataset.state = "denied"; status.textContent = "not allowed"; return; }
      status.dataset.state = "reconnecting"; status.textContent = "reconnecting…";
      const delay = Math.random() * Math.min(30000, 500 * 2 ** attempt);
      attempt += 1;
      setTimeout(connect, delay);
    };
  }
  // "Seen … ago" stays true between messages.
  setInterval(renderTables, 5000);
  connect();
  window.courierFleet = { map, drivers, orders };
})();
