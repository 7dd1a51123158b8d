"""Parse cost per message: start-up, then median and p99 over the dev and real-mail corpora.

    python bench/parse_bench.py [--shared ../shared] [--limit N]

Prints a table. Start-up is measured in a fresh interpreter (imports + directory indexes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import interpreter  # noqa: E402


def startup_seconds() -> float:
    code = ("import time; t=time.perf_counter(); from parsers.directory import Directory; "
            "from parsers.request import parse_email, parse_text; from store.sample import SAMPLE_DIRECTORY; "
            "d=Directory.from_folder(SAMPLE_DIRECTORY).build(); "
            "import datetime; parse_text(d, 'interprète arabe demain 10h', today=datetime.date(2026,11,20)); "
            "print(time.perf_counter()-t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return float(out.stdout.strip())


def measure(files: list[Path], directory) -> list[float]:  # noqa: ANN001
    from parsers.request import parse_email, parse_update
    times = []
    for path in files:
        data = path.read_bytes()
        t = time.perf_counter()
        if path.suffix == ".json":
            parse_update(directory, json.loads(data))
        else:
            parse_email(directory, data)
        times.append((time.perf_counter() - t) * 1000)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--limit", type=int, default=0, help="at most N files per corpus (0: all)")
    ap.add_argument("--passes", type=int, default=5, help="passes over each corpus (the VM is noisy)")
    args = ap.parse_args()
    shared = Path(args.shared)
    from parsers.directory import Directory
    from store.sample import SAMPLE_DIRECTORY
    directory = Directory.from_folder(SAMPLE_DIRECTORY).build()
    corpora = {
        "dev": sorted(p for p in (shared / "corpus" / "dev").glob("d*.*")),
        "real-mail": sorted(p for p in (shared / "corpora" / "real-mail").rglob("*")
                            if p.is_file() and p.suffix not in (".md", ".tsv") and "_body-only" not in p.parts),
    }
    print(f"interpreter: {interpreter()}")
    print(f"start-up (imports + directory indexes + first parse): {startup_seconds():.2f} s")
    print(f"{'corpus':10} {'files':>6} {'median ms':>10} {'p99 ms':>8} {'max ms':>8} {'best-of median':>15}"
          f"   ({args.passes} passes; best-of: each file's fastest pass, less the VM's noise)")
    for name, files in corpora.items():
        if args.limit:
            files = files[:args.limit]
        if not files:
            print(f"{name:10} {'(not found)':>6}")
            continue
        measure(files[:5], directory)  # warm caches once
        passes = [measure(files, directory) for _ in range(args.passes)]
        t = sorted(x for p in passes for x in p)
        best = statistics.median(min(per_file) for per_file in zip(*passes, strict=True))
        print(f"{name:10} {len(files):6d} {statistics.median(t):10.2f} {t[int(0.99 * (len(t) - 1))]:8.1f} {t[-1]:8.1f}"
              f" {best:15.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
