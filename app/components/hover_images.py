"""Image thumbnails in a Plotly chart's hover.

Plotly hover labels hold text only, and ``st.plotly_chart`` reports clicks and selections
but not hovers. This invisible ``st.components.v2`` component runs in the page, finds the
Plotly chart whose ``layout.meta`` is ``target``, listens to its ``plotly_hover`` events and
shows the hovered point's thumbnail beside the cursor (next to Plotly's own text label).
A point names its example through ``customdata`` (an index into ``image_of``).
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
  const show = (ev) => {
    const p = ev && ev.points && ev.points[0];
    if (!p) return;
    const id = Array.isArray(p.customdata) ? p.customdata[0] : p.customdata;
    const k = data.image_of[String(id)];
    if (k === undefined || k < 0) { tip.style.display = "none"; return; }
    if (ev.event && ev.event.clientX !== undefined) { x = ev.event.clientX; y = ev.event.clientY; }
    img.src = data.images[k];
    const w = data.size + 8;
    tip.style.left = (x + w + 40 > window.innerWidth ? x - w - 16 : x + 16) + "px";
    tip.style.top = Math.max(4, y - w - 16) + "px";
    tip.dataset.example = String(id);
    tip.style.display = "block";
  };
  const hide = () => { tip.style.display = "none"; };

  const attached = new Set();
  const attach = () => {
    document.querySelectorAll(".js-plotly-plot").forEach((gd) => {
      if (attached.has(gd) || !gd.layout || gd.layout.meta !== data.target || typeof gd.on !== "function") return;
      gd.on("plotly_hover", show);
      gd.on("plotly_unhover", hide);
      attached.add(gd);
    });
  };
  attach();
  const timer = setInterval(attach, 500);
  return () => {
    clearInterval(timer);
    document.removeEventListener("mousemove", track, true);
    attached.forEach((gd) => {
      if (typeof gd.removeListener === "function") {
        gd.removeListener("plotly_hover", show);
        gd.removeListener("plotly_unhover", hide);
      }
    });
    tip.remove();
  };
}
"""

_component = st.components.v2.component("msd_hover_images", html="<span></span>", js=_JS)


def hover_images(target: str, images: list[str], image_of: dict[int, int], size: int = 64, key: str | None = None):
    """Show ``images[image_of[i]]`` when the pointer is on a point whose customdata is ``i`` in the
    Plotly chart with ``layout.meta == target``. ``images`` are ``data:`` URIs."""
    used = sorted({k for k in image_of.values() if k >= 0})
    remap = {k: j for j, k in enumerate(used)}
    return _component(data={"target": target, "size": size, "images": [images[k] for k in used],
                            "image_of": {str(i): remap[k] for i, k in image_of.items() if k >= 0}},
                      key=key, height=1)
