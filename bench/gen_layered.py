"""Generate the layered DAG used by the benchmarks, in ccspec, make and Snakemake form.

`layers` layers of `width` jobs; every job after the first layer needs 2 jobs of the layer
before (j and j+1, wrapping). Each job writes a file, so make and Snakemake see the same work.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def parents(layer: int, j: int, width: int) -> list[str]:
    if layer == 0:
        return []
    return [f"l{layer - 1}-j{j}", f"l{layer - 1}-j{(j + 1) % width}"]


def ccspec_spec(layers: int, width: int) -> str:
    out = ["version: 1", "name: layered", "jobs:"]
    for layer in range(layers):
        for j in range(width):
            name = f"l{layer}-j{j}"
            out.append(f"  {name}:")
            out.append(f"    run: echo {name} > out/{name}")
            ps = parents(layer, j, width)
            if ps:
                out.append(f"    needs: [{', '.join(ps)}]")
    return "\n".join(out) + "\n"


def makefile(layers: int, width: int) -> str:
    names = [f"l{layer}-j{j}" for layer in range(layers) for j in range(width)]
    out = [f"all: {' '.join('out/' + n for n in names)}", ""]
    for layer in range(layers):
        for j in range(width):
            name = f"l{layer}-j{j}"
            deps = " ".join(f"out/{p}" for p in parents(layer, j, width))
            out.append(f"out/{name}: {deps}\n\t@echo {name} > out/{name}\n")
    return "\n".join(out)


def snakefile(layers: int, width: int) -> str:
    """One wildcard rule: Snakemake's fastest encoding of this DAG."""
    return f"""WIDTH = {width}
LAYERS = {layers}

def parents(wildcards):
    layer, j = int(wildcards.layer), int(wildcards.j)
    if layer == 0:
        return []
    return [f"out/l{{layer - 1}}-j{{j}}", f"out/l{{layer - 1}}-j{{(j + 1) % WIDTH}}"]

rule all:
    input: [f"out/l{{layer}}-j{{j}}" for layer in range(LAYERS) for j in range(WIDTH)]

rule job:
    input: parents
    output: "out/l{{layer}}-j{{j}}"
    wildcard_constraints: layer="\\\\d+", j="\\\\d+"
    shell: "echo l{{wildcards.layer}}-j{{wildcards.j}} > {{output}}"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--width", type=int, default=1000)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    (args.folder / "out").mkdir(exist_ok=True)
    (args.folder / "layered.yaml").write_text(ccspec_spec(args.layers, args.width))
    (args.folder / "Makefile").write_text(makefile(args.layers, args.width))
    (args.folder / "Snakefile").write_text(snakefile(args.layers, args.width))


if __name__ == "__main__":
    main()
