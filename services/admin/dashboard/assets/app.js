// orderflow live dashboard, in the browser: polls /dashboard/api/snapshot every second and renders it
// (tiles, an SVG chart, tables); a click on an order loads its timeline. Plain DOM, no libraries;
// server data only ever reaches the page as text (textContent), never as HTML.

const POLL_MS = 1000;
const outcomes = ["created", "completed", "failed", "cancelled"];
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);

/** An element with a class and text. */
function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells, className) {
  const tr = el("tr", undefined, className);
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", cell));
  return tr;
}

const time = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "");
const ms = (n) => (n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n} ms`);

function renderTotals(totals) {
  for (const outcome of outcomes) $(`total-${outcome}`).textContent = String(totals[outcome]);
  $("failed-reasons").textContent = Object.entries(totals.failedByReason)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(" · ");
}

function renderChart(throughput) {
  const svg = $("chart");
  // Drawn in the chart's own pixels, so text keeps its size at any width.
  const width = Math.max(svg.clientWidth, 300);
  const height = 200;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const left = 34;
  const bottom = 18;
  const top = 8;
  const peak = Math.max(1, ...throughput.flatMap((s) => outcomes.map((o) => s[o])));
  const x = (i) => left + (i * (width - left - 4)) / Math.max(throughput.length - 1, 1);
  const y = (v) => top + (height - top - bottom) * (1 - v / peak);
  const nodes = [];
  for (const value of [0, peak / 2, peak]) {
    const line = document.createElementNS(SVG, "line");
    line.setAttribute("class", "axis");
    line.setAttribute("x1", String(left));
    line.setAttribute("x2", String(width));
    line.setAttribute("y1", String(y(value)));
    line.setAttribute("y2", String(y(value)));
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("class", "tick");
    label.setAttribute("x", "2");
    label.setAttribute("y", String(y(value) + 3));
    label.textContent = Number.isInteger(value) ? String(value) : value.toFixed(1);
    nodes.push(line, label);
  }
  for (const [i, text] of [[0, "-60 s"], [throughput.length - 1, "now"]]) {
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("class", "tick");
    label.setAttribute("x", String(i === 0 ? left : width - 24));
    label.setAttribute("y", String(height - 4));
    label.textContent = text;
    nodes.push(label);
  }
  for (const outcome of outcomes) {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", outcome);
    line.setAttribute("points", throughput.map((s, i) => `${x(i).toFixed(1)},${y(s[outcome]).toFixed(1)}`).join(" "));
    nodes.push(line);
  }
  svg.replaceChildren(...nodes);
}

function renderLatency(latency) {
  $("lat-count").textContent = String(latency.count);
  for (const key of ["p50", "p90", "p99", "max"]) $(`lat-${key}`).textContent = latency.count === 0 ? "–" : ms(latency[key]);
}

function renderServices(services, breaker) {
  $("services").replaceChildren(
    ...services.map((s) => {
      const item = el("li", `${s.name} ${s.status}`, `badge ${s.status}`);
      item.dataset.service = s.name;
      if (s.detail) item.title = s.detail;
      return item;
    }),
  );
  const badge = $("breaker");
  badge.textContent = breaker.state;
  badge.className = `badge ${breaker.state}`;
}

function renderLag(lagByGroup, lag) {
  const rows = Object.entries(lagByGroup).map(([group, total]) => {
    const behind = lag.filter((p) => p.group === group && p.lag > 0).map((p) => `${p.topic}[${p.partition}] ${p.lag}`);
    const name = el("th", group);
    if (behind.length > 0) name.title = behind.join("\n");
    return row([name, el("td", total)], total === 0 ? "zero" : "");
  });
  $("lag").replaceChildren(...rows);
}

function renderDlq(dlq) {
  const full = dlq.filter((d) => d.records > 0);
  const rows = full.map((d) => row([el("th", d.topic), el("td", d.records)]));
  if (rows.length < dlq.length) rows.push(row([el("th", `${dlq.length - full.length} other DLQ topics`), el("td", "empty")], "zero"));
  $("dlq").replaceChildren(...rows);
}

let selected;

function renderOrders(orders) {
  const rows = orders.map((o) => {
    const open = el("button", o.orderId, "link");
    open.type = "button";
    open.addEventListener("click", () => void showTimeline(o.orderId));
    const id = el("td");
    id.append(open);
    const status = el("td", o.failureReason ? `${o.status} (${o.failureReason})` : o.status, `status-${o.status}`);
    const tr = row([id, status, el("td", `${o.total} ${o.currency}`), el("td", time(o.updatedAt))], o.orderId === selected ? "selected" : "");
    tr.dataset.orderId = o.orderId;
    return tr;
  });
  if (rows.length === 0) rows.push(row([el("td", "no orders yet", "muted")]));
  $("orders").tBodies[0].replaceChildren(...rows);
}

async function showTimeline(orderId) {
  selected = orderId;
  const response = await fetch(`/dashboard/api/orders/${encodeURIComponent(orderId)}`);
  const panel = $("timeline");
  $("timeline-id").textContent = orderId;
  panel.hidden = false;
  if (!response.ok) {
    $("timeline-order").textContent = response.status === 404 ? "not known to the order read model (yet)" : `could not load (${response.status})`;
    $("timeline-events").replaceChildren();
    $("timeline-saga").textContent = "";
    return;
  }
  const { order, events, saga } = await response.json();
  const failure = order.failureReason ? ` (${order.failureReason})` : "";
  const items = order.items.map((i) => `${i.quantity} × ${i.productId}`).join(", ");
  $("timeline-order").textContent = `${order.status}${failure} · ${order.total} ${order.currency} · ${items}${order.refunded ? " · refunded" : ""}`;
  $("timeline-events").replaceChildren(
    ...events.map((e) => {
      const tr = row([el("td", new Date(e.occurredAt).toISOString().slice(11, 23)), el("td", e.topic), el("td", e.eventType.replace(/^orderflow\.v1\./, "")), el("td", e.summary)]);
      tr.dataset.topic = e.topic;
      return tr;
    }),
  );
  $("timeline-saga").textContent = saga
    ? `saga: ${saga.status} · payment ${saga.payment} · stock ${saga.stock}` +
      (saga.failure ? ` · failure ${saga.failure.reason}: ${saga.failure.detail}` : "") +
      (saga.parked.length > 0 ? ` · parked: ${saga.parked.join(", ")}` : "")
    : "saga: not held by the orchestrator";
}

function render(snapshot) {
  renderTotals(snapshot.totals);
  renderChart(snapshot.throughput);
  renderLatency(snapshot.latencyMs);
  renderServices(snapshot.services, snapshot.breaker);
  renderLag(snapshot.lagByGroup, snapshot.lag);
  renderDlq(snapshot.dlq);
  renderOrders(snapshot.latestOrders);
  $("updated").textContent = `updated ${time(snapshot.at)}`;
  const stale = $("stale");
  stale.hidden = snapshot.stale.length === 0;
  stale.textContent = `stale: ${snapshot.stale.join(", ")}`;
}

async function poll() {
  try {
    const response = await fetch("/dashboard/api/snapshot", { cache: "no-store" });
    if (!response.ok) throw new Error(`snapshot answered ${response.status}`);
    render(await response.json());
  } catch (err) {
    $("updated").textContent = `cannot reach the dashboard (${err instanceof Error ? err.message : String(err)})`;
  } finally {
    setTimeout(() => void poll(), POLL_MS);
  }
}

$("timeline-close").addEventListener("click", () => {
  selected = undefined;
  $("timeline").hidden = true;
});
void poll();
