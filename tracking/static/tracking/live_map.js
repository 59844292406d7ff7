// The staff live map (inside the admin): every working driver and active order, fed by /ws/fleet/.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("fleet-config").textContent);
  const FINAL = new Set(["delivered", "cancelled"]);
  const COLORS = { available: "#16a34a", busy: "#2563eb", offline: "#6b7280" };
  const map = L.map("fleet-map");
  L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", { maxZoom: 19, attribution: "© OpenStreetMap contributors" })
    .addTo(map);
  map.setView([52.52, 13.405], 12);
  const drivers = new Map(); // driver_id -> {data, marker}
  const orders = new Map(); // order_id -> {data, layers}
  let fitted = false;

  function cell(text) { const td = document.createElement("td"); td.textContent = text == null ? "–" : text; return td; }

  function renderTables() {
    const dBody = document.querySelector("#drivers tbody");
    dBody.replaceChildren(...[...drivers.values()].map(({ data }) => {
      const tr = document.createElement("tr");
      tr.dataset.driverId = data.driver_id;
      tr.dataset.status = data.status;
      const p = data.position;
      tr.append(cell(data.name + " (#" + data.driver_id + ")"), cell(data.status), cell(data.order_id && data.order_id.slice(0, 8)),
        cell(p ? p.lat.toFixed(5) + ", " + p.lng.toFixed(5) : null), cell(p ? new Date(p.recorded_at).toLocaleTimeString() : null));
      return tr;
    }));
    const oBody = document.querySelector("#orders tbody");
    oBody.replaceChildren(...[...orders.values()].map(({ data }) => {
      const tr = document.createElement("tr");
      tr.dataset.orderId = data.order_id;
      tr.append(cell(data.order_id.slice(0, 8)), cell(data.status), cell(data.driver_id),
        cell(data.destination ? data.destination.address : null));
      return tr;
    }));
    document.getElementById("driver-count").textContent = drivers.size;
    document.getElementById("order-count").textContent = orders.size;
  }

  function fitOnce(latLng) {
    if (!fitted) { map.setView(latLng, 13); fitted = true; }
  }

  function upsertDriver(data) {
    const known = drivers.get(data.driver_id);
    const entry = known || { data: {}, marker: null };
    Object.assign(entry.data, data);
    const p = entry.data.position;
    if (p) {
      const latLng = [p.lat, p.lng];
      const color = COLORS[entry.data.status] || "#6b7280";
      if (!entry.marker) {
        entry.marker = L.circleMarker(latLng, { radius: 8, color: "#111827", weight: 1, fillColor: color, fillOpacity: 1,
          className: "fleet-driver driver-" + data.driver_id }).addTo(map);
        fitOnce(latLng);
      } else {
        entry.marker.setLatLng(latLng);
        entry.marker.setStyle({ fillColor: color });
      }
      entry.marker.bindTooltip(entry.data.name + " · " + entry.data.status);
    }
    drivers.set(data.driver_id, entry);
  }

  function upsertOrder(data) {
    if (FINAL.has(data.status)) {
      const gone = orders.get(data.order_id);
      if (gone) gone.layers.forEach((layer) => layer.remove());
      orders.delete(data.order_id);
      return;
    }
    const entry = orders.get(data.order_id) || { data: {}, layers: [] };
    Object.assign(entry.data, data);
    if (!entry.layers.length && entry.data.store && entry.data.destination) {
      const s = [entry.data.store.lat, entry.data.store.lng], d = [entry.data.destination.lat, entry.data.destination.lng];
      entry.layers = [
        L.polyline([s, d], { color: "#f97316", weight: 2, dashArray: "4 6" }).addTo(map),
        L.circleMarker(d, { radius: 5, color: "#9a3412", fillColor: "#f97316", fillOpacity: 1 }).addTo(map),
        L.circleMarker(s, { radius: 6, color: "#0f766e", fillColor: "#14b8a6", fillOpacity: 1 }).addTo(map),
      ];
      fitOnce(s);
    }
    orders.set(data.order_id, entry);
  }

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
        orders.forEach(({ layers }) => layers.forEach((layer) => layer.remove()));
        orders.clear();
        message.drivers.forEach(upsertDriver);
        message.orders.forEach(upsertOrder);
      } else if (message.type === "driver") {
        const { type, lat, lng, recorded_at, heading, speed, ...rest } = message;
        upsertDriver({ ...rest, position: { lat, lng, recorded_at, heading, speed } });
      } else if (message.type === "order") {
        upsertOrder(message);
        if (message.driver_id && drivers.has(message.driver_id)) {
          drivers.get(message.driver_id).data.order_id = FINAL.has(message.status) ? null : message.order_id;
        }
      }
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
  connect();
})();
