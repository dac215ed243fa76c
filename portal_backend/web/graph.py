"""A small relation graph for the entity page, laid out on the server as plain SVG.

The entity sits in the middle and its related entities on a circle around it, one
labelled edge each; no JavaScript, so it reads (and links work) without scripts.
"""

from __future__ import annotations

import math
from typing import Any

WIDTH, HEIGHT = 640, 360
NODE_W, NODE_H = 170, 34
MAX_NODES = 16


def _label(ref: str, related: dict[str, dict[str, Any]] | None = None) -> str:
    """The entity's title (else its name), cut to fit its box; the kind is drawn apart."""
    meta = ((related or {}).get(ref) or {}).get("metadata") or {}
    text = str(meta.get("title") or meta.get("name") or ref.rpartition("/")[2])
    return text if len(text) <= 24 else text[:23] + "…"


def relation_graph(
    entity: dict[str, Any], related: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    meta = entity.get("metadata") or {}
    kind = str(entity.get("kind", "")).lower()
    center_ref = f"{kind}:{meta.get('namespace', 'default')}/{meta.get('name', '')}"
    # One node per related entity; several relation types to it share the node.
    targets: dict[str, list[str]] = {}
    for relation in entity.get("relations") or []:
        targets.setdefault(relation["targetRef"], []).append(relation["type"])
    shown = sorted(targets)[:MAX_NODES]
    cx, cy = WIDTH / 2, HEIGHT / 2
    rx, ry = WIDTH / 2 - NODE_W / 2 - 8, HEIGHT / 2 - NODE_H / 2 - 8
    nodes = []
    for index, ref in enumerate(shown):
        angle = -math.pi / 2 + 2 * math.pi * index / max(len(shown), 1)
        x, y = cx + rx * math.cos(angle), cy + ry * math.sin(angle)
        nodes.append(
            {
                "ref": ref,
                "label": _label(ref, related),
                "kind": ref.partition(":")[0].title(),
                "relation": ", ".join(sorted(set(targets[ref]))),
                "x": round(x - NODE_W / 2, 1),
                "y": round(y - NODE_H / 2, 1),
                "cx": round(x, 1),
                "cy": round(y, 1),
                # Edge label halfway between the centre and the node.
                "lx": round((cx + x) / 2, 1),
                "ly": round((cy + y) / 2, 1),
            }
        )
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "node_w": NODE_W,
        "node_h": NODE_H,
        "center": {
            "label": _label(center_ref, {center_ref: entity}),
            "x": cx - NODE_W / 2,
            "y": cy - NODE_H / 2,
            "cx": cx,
            "cy": cy,
        },
        "nodes": nodes,
        "hidden": max(0, len(targets) - len(shown)),
    }
