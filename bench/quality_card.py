"""What the quality card adds to a training (issue 14 target: at most 60 s for a default CPU
training of a 64 px model). Times ``training_quality_card`` -- the card computed at the end of
every training -- for a fast sampler (classic) and a slow one (a default DDIM; fitted for one step
only, which does not change its sampling cost) on the flowers at 64 px, and on sklearn's digits.

    python bench/quality_card.py --threads 2
"""
from __future__ import annotations

import time

import torch

from _common import machine, setup, write_json
from genaug import api
from genaug.data.builtin import find_data_file, load_digits_dataset
from genaug.generators.base import get_generator_class
from genaug.quality.card import QUALITY_SAMPLES, training_quality_card


def main() -> None:
    parser = setup(__doc__)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    flowers = api.ingest(find_data_file("flowers"), image_size=64).data
    digits = load_digits_dataset()
    cases = [("flowers 64 px, classic", flowers, "classic", {}), ("flowers 64 px, ddim (default config)", flowers,
                                                                  "ddim", {"steps": 1}),
             ("flowers 64 px, vae (default config)", flowers, "vae", {"steps": 1}),
             ("digits 8 px, classic", digits, "classic", {})]
    if args.quick:
        cases = cases[-1:]
    rows = []
    for label, data, kind, config in cases:
        generator = get_generator_class(kind)(config).fit(data)
        started = time.monotonic()
        card, reference = training_quality_card(generator, data, QUALITY_SAMPLES)
        seconds = time.monotonic() - started
        rows.append({"case": label, "classes": len(data.class_names), "training_images": len(data),
                     "references": len(reference.labels), "samples_per_class": card["samples_per_class"],
                     "seconds": round(seconds, 1), "kid": card["overall"].get("kid", {}).get("mean"),
                     "limited": any("slow sampler" in w for w in card["warnings"])})
        print(rows[-1], flush=True)
    out = args.out / "issue14"
    payload = {"benchmark": "quality card time", "machine": machine(), "rows": rows}
    write_json(out / "quality_card.json", payload)
    lines = ["# The quality card's cost at the end of a training", "",
             f"Command: `{payload['machine']['command']}`, CPU, {payload['machine']['threads']} torch thread(s).", "",
             "| case | classes | training images | references scored | samples per class | seconds | "
             "limited by the sampler's speed |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['classes']} | {r['training_images']} | {r['references']} | "
              f"{r['samples_per_class']} | {r['seconds']} | {'yes' if r['limited'] else 'no'} |" for r in rows]
    (out / ("quality_card_quick.md" if args.quick else "quality_card.md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
