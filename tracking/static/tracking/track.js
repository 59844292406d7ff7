// The customer's tracking page: a Leaflet map (store, destination, the rider moving live), the status
// timeline and the ETA, fed by /ws/orders/<id>/. When the socket drops it reconnects with exponential
// backoff and jitter; every (re)connection starts with a snapshot, so the page resyncs from it.
// Works without map tiles (no network): markers and lines are vector shapes drawn by Leaflet itself.
(function () {
  "use strict";
  const page = JSON.parse(document.getElementById("tracking-page").textContent);
  const STEPS = page.steps.map((s) => s.status);
  const FINAL = new Set(["delivered", "cancelled"]);
  const LABELS = page.labels;
  const FALLBACK_SPEED = 6; // m/s (~22 km/h, a city rider) when the rider reports none
  const el = (id) => document.getElementById(id);

  // --- Map -------------------------------------------------------------------------------------
  const storeLatLng = [page.store.lat, page.store.lng];
  const destLatLng = [page.destination.lat, page.destination.lng];
  const map = L.map("map", { zoomControl: true, attributionControl: true, zoomSnap: 0.25 });
  L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
    maxZoom: 19,
    attribution: "© OpenStreetMap contributors",
  }).addTo(map);
  L.polyline([storeLatLng, destLatLng], { color: "#64748b", weight: 3, dashArray: "6 8", className: "route-line" })
    .addTo(map);
  const trail = L.polyline([], { color: "#2563eb", weight: 4, className: "rider-trail" }).addTo(map);
  L.circleMarker(storeLatLng, { radius: 9, color: "#0f766e", fillColor: "#14b8a6", fillOpacity: 1, className: "store-marker" })
    .bindTooltip("Store: " + page.store.name, { permanent: true, direction: "top" }).addTo(map);
  L.circleMarker(destLatLng, { radius: 9, color: "#9a3412", fillColor: "#f97316", fillOpacity: 1, className: "destination-marker" })
    .bindTooltip("You", { permanent: true, direction: "top" }).addTo(map);
  let rider = null;
  // Store and destination always in view, with room for their labels, whatever the screen: measured
  // after layout (a phone's map box is sized by CSS after Leaflet first looks) and again on resize.
  function fitPlaces(extra) {
    map.invalidateSize();
    map.fitBounds(L.latLngBounds([storeLatLng, destLatLng].concat(extra ? [extra] : [])),
      { padding: [48, 48], maxZoom: 16, animate: false });
  }
  fitPlaces();
  window.addEventListener("resize", () => fitPlaces(rider && rider.getLatLng()));

  // --- State -----------------------------------------------------------------------------------
  let status = page.status;
  let riderName = page.rider;
  let lastRecordedAt = null;
  let lastPosition = null;

  function showStatus(next, at) {
    const previous = status;
    status = next;
    const node = el("status");
    node.textContent = LABELS[next] || next;
    node.dataset.status = next;
    if (next === "cancelled") {
      // What happened to the money is the server's to say (refunded, never charged): reload the page, once.
      if (previous !== "cancelled") location.reload();
      return;
    }
    showStatusLine();
    const reachedIndex = STEPS.indexOf(next);
    document.querySelectorAll("#timeline li").forEach((li, i) => {
      li.classList.toggle("done", reachedIndex >= 0 && i <= reachedIndex);
      li.classList.toggle("current", i === reachedIndex);
      if (i === reachedIndex && at) {
        li.querySelector("time").textContent = new Date(at).toLocaleTimeString();
      }
    });
    if (FINAL.has(next)) el("eta-line").hidden = true;
  }

  function showStatusLine() {
    // Assigned without a rider: the rider gave it back and a new one is being found (status never goes back).
    const line = page.status_lines[status === "assigned" && !riderName ? "paid" : status];
    if (line) el("status-line").textContent = line.replace("{rider}", riderName || "Your rider");
  }

  function distanceMeters(a, b) {
    const rad = Math.PI / 180, R = 6371000;
    const dLat = (b[0] - a[0]) * rad, dLng = (b[1] - a[1]) * rad;
    const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[0] * rad) * Math.cos(b[0] * rad) * Math.sin(dLng / 2) ** 2;
    return 2 * R * Math.asin(Math.sqrt(h));
  }

  function showEta(seconds) {
    if (FINAL.has(status)) return;
    if (seconds == null) { el("eta").textContent = "–"; return; }
    const minutes = Math.max(1, Math.round(seconds / 60));
    el("eta").textContent = minutes + " min";
    el("eta").dataset.seconds = Math.round(seconds);
  }

  // Between snapshots the ETA is re-estimated here: remaining path (via the store until picked up) / speed.
  function estimateEta(position) {
    const here = [position.lat, position.lng];
    const meters = status === "picked_up" ? distanceMeters(here, destLatLng)
      : distanceMeters(here, storeLatLng) + distanceMeters(storeLatLng, destLatLng);
    const speed = position.speed && position.speed > 1 ? position.speed : FALLBACK_SPEED;
    return meters / speed;
  }

  function showPosition(position, fromSnapshot) {
    if (!position) return;
    // Positions can arrive out of order around a reconnect: never move the rider backwards in time.
    if (lastRecordedAt && position.recorded_at && position.recorded_at < lastRecordedAt) return;
    lastRecordedAt = position.recorded_at;
    lastPosition = position;
    const latLng = [position.lat, position.lng];
    if (!rider) {
      rider = L.circleMarker(latLng, { radius: 10, color: "#1e3a8a", fillColor: "#3b82f6", fillOpacity: 1, className: "rider-marker" })
        .bindTooltip("Rider", { direction: "top" }).addTo(map);
    } else {
      rider.setLatLng(latLng);
    }
    trail.addLatLng(latLng);
    // Where the rider is shows on the map; in words only how fresh that is (no raw coordinates).
    el("position").textContent = "· seen " + (position.recorded_at ? new Date(position.recorded_at).toLocaleTimeString() : "just now");
    el("position").dataset.lat = position.lat;
    el("position").dataset.lng = position.lng;
    if (!fromSnapshot) showEta(estimateEta(position));
    if (!map.getBounds().contains(latLng)) fitPlaces(latLng);
  }

  function showDriver(driver) {
    riderName = driver ? driver.name : null;
    el("driver").textContent = riderName || "not assigned yet";
    if (!FINAL.has(status)) showStatusLine();
  }

  function setConnection(state, text) {
    const node = el("connection");
    node.dataset.state = state;
    node.textContent = text;
  }

  // --- Socket ----------------------------------------------------------------------------------
  let attempt = 0;
  let finished = false;

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + page.ws_path);
    let pinger = null;
    socket.onopen = () => {
      pinger = setInterval(() => socket.readyState === 1 && socket.send(JSON.stringify({ type: "ping" })), 25000);
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "snapshot") {
        attempt = 0;
        setConnection("live", "live");
        showDriver(message.driver);
        showStatus(message.order.status, null);
        showPosition(message.position, true);
        showEta(message.eta_seconds);
      } else if (message.type === "position") {
        showPosition(message, false);
      } else if (message.type === "status") {
        showStatus(message.status, message.at);
        if (FINAL.has(message.status)) finished = true;
      }
    };
    socket.onclose = (event) => {
      clearInterval(pinger);
      if (finished || event.code === 1000) {
        setConnection("done", status === "delivered" ? "delivered" : status === "cancelled" ? "order cancelled" : "closed");
        return;
      }
      if (event.code === 4401) {
        location.href = "/accounts/login/?next=" + encodeURIComponent(location.pathname);
        return;
      }
      if (event.code === 4404) {
        setConnection("gone", "this order is not available");
        return;
      }
      // Exponential backoff with full jitter, capped: a restarting server is not stampeded.
      const delay = Math.random() * Math.min(30000, 500 * 2 ** attempt);
      attempt += 1;
      setConnection("reconnecting", "reconnecting…");
      setTimeout(connect, delay);
    };
  }

  showStatus(page.status, null);
  page.steps.forEach((step, i) => {
    if (step.at) document.querySelectorAll("#timeline li time")[i].textContent = new Date(step.at).toLocaleTimeString();
  });
  if (FINAL.has(page.status)) finished = true;
  // Until the refund is settled, look again every 3 s, 20 times at most (a gateway outage can take longer:
  // the saga keeps retrying, and the next visit shows the outcome).
  const lookedAgain = Number(sessionStorage.getItem("refund-" + page.order_id) || 0);
  if (page.refund_pending && lookedAgain < 20) {
    sessionStorage.setItem("refund-" + page.order_id, lookedAgain + 1);
    setTimeout(() => location.reload(), 3000);
  }
  connect();
  window.courierTracking = { map, rider: () => rider, lastPosition: () => lastPosition };
})();
