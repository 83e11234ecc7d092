"""Image thumbnails in a Vega-Lite chart's tooltip.

Vega-Lite tooltips hold text (an image only if every point carries its own picture, which would
send each thumbnail once per chart and per redraw). This invisible ``st.components.v2`` component
runs in the page, watches the tooltip Vega shows (``#vg-tooltip-element``) and, when its row
``example`` names an example that has a thumbnail, shows that thumbnail beside the cursor. The
thumbnails travel once, with the component; a chart opts in by putting ``example`` (the example's
index in the split) in its tooltip, as ``charts.saliency_scatter`` does.
"""

from __future__ import annotations

import streamlit as st

_JS = r"""
export default function (component) {
  const { data } = component;
  const tip = document.createElement("div");
  tip.className = "msd-hover-image";
  Object.assign(tip.style, {
    position: "fixed", display: "none", zIndex: "100000", pointerEvents: "none", background: "white",
    border: "1px solid #bbb", borderRadius: "4px", padding: "3px", boxShadow: "0 2px 8px rgba(0,0,0,.25)",
  });
  const img = document.createElement("img");
  img.width = data.size;
  img.height = data.size;
  img.alt = "example thumbnail";
  tip.appendChild(img);
  document.body.appendChild(tip);

  let x = 0, y = 0;
  const track = (e) => { x = e.clientX; y = e.clientY; };
  document.addEventListener("mousemove", track, true);
  const exampleIn = (box) => {
    for (const row of box.querySelectorAll("tr")) {
      const key = row.querySelector("td.key");
      const value = row.querySelector("td.value");
      if (key && value && key.textContent.trim().replace(/:$/, "") === "example") return value.textContent.trim();
    }
    return null;
  };
  const update = () => {
    const box = document.getElementById("vg-tooltip-element");
    const id = box && box.classList.contains("visible") ? exampleIn(box) : null;
    const k = id === null ? undefined : data.image_of[id];
    if (k === undefined || k < 0) { tip.style.display = "none"; return; }
    img.src = data.images[k];
    const w = data.size + 8;
    tip.style.left = (x + w + 40 > window.innerWidth ? x - w - 16 : x + 16) + "px";
    tip.style.top = Math.max(4, y - w - 16) + "px";
    tip.dataset.example = id;
    tip.style.display = "block";
  };
  // Vega adds its tooltip element to <body> on the first hover and from then on only changes its
  // class and rows: watch <body>'s children until it is there, then that element alone (watching
  // the whole page would slow every redraw of it).
  const watcher = new MutationObserver(update);
  const watch = () => {
    const box = document.getElementById("vg-tooltip-element");
    if (!box) return false;
    watcher.observe(box, { childList: true, subtree: true, attributes: true, attributeFilter: ["class"] });
    return true;
  };
  const waiter = new MutationObserver(() => { if (watch()) waiter.disconnect(); });
  if (!watch()) waiter.observe(document.body, { childList: true });
  return () => {
    waiter.disconnect();
    watcher.disconnect();
    document.removeEventListener("mousemove", track, true);
    tip.remove();
  };
}
"""

_component = st.components.v2.component("msd_hover_images", html="<span></span>", js=_JS)


def hover_images(images: list[str], image_of: dict[int, int], size: int = 64, key: str | None = None):
    """Show ``images[image_of[i]]`` beside the cursor while a chart's tooltip says ``example: i``.
    ``images`` are ``data:`` URIs."""
    used = sorted({k for k in image_of.values() if k >= 0})
    remap = {k: j for j, k in enumerate(used)}
    return _component(data={"size": size, "images": [images[k] for k in used],
                            "image_of": {str(i): remap[k] for i, k in image_of.items() if k >= 0}},
                      key=key, height=1)
