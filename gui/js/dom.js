// Building DOM nodes without innerHTML: text is always text, never markup.

// h('a', {href: '#/x', class: 'y', onclick: fn}, 'text', child, [more])
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// Replaces el's children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Replaces el's children, unless key (a string describing what they show)
// is the one el shows already; keeps the keyboard focus on the link or
// control of the same href or id when it was inside el. For views that
// re-render on a timer, so that a keyboard user is not thrown out.
export function refill(el, key, ...children) {
  if (key !== undefined && el.dataset.shown === key) return el;
  const active = document.activeElement;
  const inside = active && active !== el && el.contains(active);
  const id = inside ? active.id : '';
  const href = inside ? active.getAttribute('href') : null;
  const sameHref = () => [...el.querySelectorAll('[href]')].filter((x) => x.getAttribute('href') === href);
  const nth = href ? sameHref().indexOf(active) : -1;
  fill(el, ...children);
  if (key !== undefined) el.dataset.shown = key;
  if (inside) {
    let again = id ? el.querySelector(`#${CSS.escape(id)}`) : null;
    if (!again && href) { const all = sameHref(); again = all[Math.min(Math.max(nth, 0), all.length - 1)]; }
    if (again) again.focus({ preventScroll: true });
  }
  return el;
}

// A service or intention side as typed by users: "name" or "ns/name".
export function sideName(ns, name) {
  return !ns || ns === 'default' ? name : `${ns}/${name}`;
}

export function statusBadge(status) {
  return h('span', { class: `badge ${status}` }, status);
}
