"""The figure every trial run carries beside ``layers.json``: its layers' densities, as an SVG file
that MLflow's artifact view shows as an image (no plotting library: it is written per run, and per
run again on every import of a bundle)."""
from __future__ import annotations

from xml.sax.saxutils import escape

BAR, ROW, LABEL = 240, 22, 260  # bar length at density 1, row height, width of the names' column


def layer_densities_svg(layers: dict[str, dict]) -> str:
    """One row per layer: its density (dark) and effective density (grey, what still reaches the
    output), with the layer's name, shape and both values."""
    width, height = LABEL + BAR + 150, ROW * len(layers) + 44
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="11"><text x="4" y="14" font-weight="bold">Layer densities</text>'
           f'<text x="{LABEL}" y="14" fill="#1a5fb4">■ density</text>'
           f'<text x="{LABEL + 80}" y="14" fill="#8a939c">■ effective</text>']
    for i, (name, layer) in enumerate(layers.items()):
        y = 26 + i * ROW
        density, effective = layer.get("density", 0.0), layer.get("effective_density", 0.0)
        shape = "×".join(map(str, layer.get("shape", [])))
        out.append(f'<text x="4" y="{y + 13}">{escape(name)} <tspan fill="#5d6873">{escape(shape)}</tspan></text>'
                   f'<rect x="{LABEL}" y="{y + 2}" width="{BAR * density:.1f}" height="8" fill="#1a5fb4"/>'
                   f'<rect x="{LABEL}" y="{y + 11}" width="{BAR * effective:.1f}" height="6" fill="#8a939c"/>'
                   f'<text x="{LABEL + BAR + 8}" y="{y + 13}">{density:.4f} / {effective:.4f}</text>')
    out.append(f'<line x1="{LABEL}" y1="22" x2="{LABEL}" y2="{height - 16}" stroke="#5d6873"/>'
               f'<line x1="{LABEL + BAR}" y1="22" x2="{LABEL + BAR}" y2="{height - 16}" stroke="#dde2e8"/>'
               f'<text x="{LABEL}" y="{height - 4}" text-anchor="middle">0</text>'
               f'<text x="{LABEL + BAR}" y="{height - 4}" text-anchor="middle">1</text></svg>')
    return "".join(out)
