"""Run a notebook top to bottom, `slow` cells included, and save its outputs in place: how the saved results
(plots, tables) that the docs show are made. `gpu` cells are skipped unless CUDA is there; `eval: false` cells
never run. Then `nbdev_clean` it. Usage, from the repository root: python .ci/run_nb.py nbs/NAME.ipynb [...]"""
import os, re, sys
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

def _skip(cell, gpu: bool) -> bool:
    "Markdown, `eval: false` cells, and `gpu` cells without CUDA."
    if cell.cell_type != "code": return True
    flags = set(re.findall(r"^#\|\s*([\w-]+)", cell.source, flags=re.M))
    if re.search(r"^#\|\s*eval:\s*false", cell.source, flags=re.M): return True
    return "gpu" in flags and not gpu

def run(path: Path) -> bool:
    "Execute `path` in its folder; False (and the outputs so far kept unsaved) when a cell fails."
    import torch
    nb, gpu, here = read_nb(path), torch.cuda.is_available(), Path.cwd()
    os.chdir(path.parent)
    try:
        shell = CaptureShell()
        for i, cell in enumerate(nb.cells):
            if _skip(cell, gpu): continue
            cell.outputs = []
            shell.cell(cell)
            if shell.exc:
                print(f"{path}: cell {i} failed:\n{cell.source[:300]}\n{shell.exc!r}", file=sys.stderr)
                return False
    finally: os.chdir(here)
    write_nb(nb, path)
    return True

if __name__ == "__main__":
    ok = all([run(Path(p)) for p in sys.argv[1:]])
    sys.exit(0 if ok else 1)
