"""Boai's reductions against py-ard 2.4.2, fed the same IPD-IMGT/HLA 3.58.0 files offline.

Run through benches/pyard/run.sh, which makes the virtual environment, the offline mirror
(IMGT_HLA_URL=file://…) and the inputs. Two parts:

1. Agreement: every distinct allele list of the inputs (every allele name of the release,
   every two-field name, the 20k corpus, the WMDA MVT 3 set) reduced by both to lgx, G, P
   and serology; each difference is put in a documented class (ARCHITECTURE.md, "Reductions
   and py-ard"); any difference outside them fails the run.
2. Speed: both reduce the whole genotypes, each in one run; py-ard's loop is timed without
   its start-up, Boai's as a whole process, loading included.
"""

import collections
import json
import os
import subprocess
import sys
import time

SHARED = os.environ["BOAI_SHARED"]
BOAI = os.environ["BOAI_BIN"]
WORK = os.environ["BOAI_PYARD_WORK"]


def offline_pyard():
    """py-ard reads its files through urlopen (file:// works); its MAC dictionary and its
    list of releases come from the network, so both are read from disk instead."""
    import pyard.data_repository
    import pyard.db
    import pyard.loader.mac_codes
    import pyard.misc
    from pyard.simple_table import Table

    def load_mac_codes():
        rows = []
        # alpha.v3: `[*]\tCODE\tSUBTYPE`, `*` marking codes whose entries carry the group
        with open(os.path.join(SHARED, "mac/alpha.v3.subset.txt")) as f:
            for line in f.read().splitlines()[2:]:
                parts = line.split("\t")
                if len(parts) >= 3:
                    rows.append((parts[1], parts[2]))
        return Table(rows, ["Code", "Alleles"])

    pyard.loader.mac_codes.load_mac_codes = load_mac_codes
    pyard.data_repository.load_mac_codes = load_mac_codes
    pyard.misc.get_imgt_db_versions = lambda: ["3580"]
    pyard.db.get_imgt_db_versions = lambda: ["3580"]
    import pyard

    return pyard.init("3580", data_dir=os.path.join(WORK, "pyard-data"))


PAIRS = [("lgx", "lgx"), ("G", "g"), ("P", "p"), ("S", "serology")]


def boai_reduce(to, lines):
    """Boai's reduction of each line, in order (None where Boai refuses it)."""
    proc = subprocess.run(
        [BOAI, "hla", "reduce", "--to", to],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
    )
    out = []
    for line in proc.stdout.splitlines():
        obj = json.loads(line)
        out.append(obj.get("reduced"))
    assert len(out) == len(lines), (to, len(out), len(lines))
    return out


def pyard_reduce(ard, to, lines):
    out = []
    for line in lines:
        try:
            out.append(ard.redux(line, to))
        except Exception as e:  # py-ard refuses with an exception
            out.append(None)
    return out


def names(text):
    return set(text.split("/")) if text else set()


def main():
    if sys.argv[1:] == ["speed"]:
        # A fresh process, so py-ard's caches start as cold as Boai's memo.
        speed(offline_pyard())
        return
    inputs = {}
    for name in ["alleles", "two-field", "corpus-20k", "wmda-mvt3"]:
        with open(os.path.join(WORK, f"lists-{name}.txt")) as f:
            inputs[name] = [l.strip() for l in f if l.strip()]
    ard = None
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import classes

    facts = classes.Facts(SHARED)
    for pyard_to, boai_to in PAIRS:
        # py-ard's answer for each allele alone, for the classes that compare a name's
        # answer with its alleles'.
        cache = os.path.join(WORK, f"pyard-alleles-{boai_to}.json")
        if not os.path.exists(cache):
            ard = ard or offline_pyard()
            with open(cache, "w") as f:
                json.dump(pyard_reduce(ard, pyard_to, inputs["alleles"]), f)
        with open(cache) as f:
            facts.load_pyard_allele_answers(boai_to, inputs["alleles"], json.load(f))
    unexplained = []
    table = collections.Counter()
    examples = {}
    for source, lines in inputs.items():
        for pyard_to, boai_to in PAIRS:
            # py-ard's answers are kept (slow to make); Boai's are made afresh each run.
            # Delete the file to ask py-ard again.
            cache = os.path.join(WORK, f"pyard-{source}-{boai_to}.json")
            if os.path.exists(cache):
                with open(cache) as f:
                    theirs = json.load(f)
            else:
                ard = ard or offline_pyard()
                theirs = pyard_reduce(ard, pyard_to, lines)
                with open(cache, "w") as f:
                    json.dump(theirs, f)
            ours = boai_reduce(boai_to, lines)
            for typing, b, p in zip(lines, ours, theirs):
                table[(source, boai_to, "compared")] += 1
                if b is not None and p is not None and names(b) == names(p):
                    table[(source, boai_to, "same")] += 1
                    continue
                kind = classes.classify(facts, boai_to, typing, b, p)
                table[(source, boai_to, kind)] += 1
                examples.setdefault((boai_to, kind), (typing, b, p))
                if kind == "UNEXPLAINED":
                    unexplained.append((source, boai_to, typing, b, p))
    print("\n## Agreement (distinct allele lists)\n")
    print("| inputs | reduction | class | count |")
    print("|---|---|---|---:|")
    for (source, to, kind), n in sorted(table.items()):
        print(f"| {source} | {to} | {kind} | {n} |")
    print("\n## One example of each class\n")
    for (to, kind), (typing, b, p) in sorted(examples.items()):
        print(f"- {to}, {kind}: `{typing}` → Boai `{b}`, py-ard `{p}`")
    if unexplained:
        with open(os.path.join(WORK, "unexplained.jsonl"), "w") as f:
            for u in unexplained:
                f.write(json.dumps(u) + "\n")
        print(f"\n{len(unexplained)} differences outside the documented classes, e.g.:")
        for u in unexplained[:30]:
            print("  ", u)
        sys.exit(1)


def speed(ard):
    """Each reduction over two sets of whole genotypes: the WMDA MVT 3 set, and the first
    donors of the 20k corpus (XX codes and MACs, slow in py-ard, hence a sample)."""
    print("\n## Speed, one run each\n")
    print(
        "| genotypes | reduction | py-ard loop (s) | Boai loop (s) | Boai whole process (s) "
        "| loop ratio | whole-process ratio |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, name in [("WMDA MVT 3", "genotypes-wmda.txt"), ("20k corpus, first", "genotypes-corpus.txt")]:
        path = os.path.join(WORK, name)
        with open(path) as f:
            genotypes = [l.strip() for l in f if l.strip()]
        for pyard_to, boai_to in PAIRS:
            start = time.perf_counter()
            for g in genotypes:
                try:
                    ard.redux(g, pyard_to)
                except Exception:
                    pass
            theirs = time.perf_counter() - start
            start = time.perf_counter()
            with open(path) as stdin:
                proc = subprocess.run(
                    [BOAI, "hla", "reduce", "--timings", "--to", boai_to],
                    stdin=stdin,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            whole = time.perf_counter() - start
            loop = float(proc.stderr.split(" in ")[1].split(" ms")[0]) / 1000
            print(
                f"| {label} {len(genotypes)} | {boai_to} | {theirs:.3f} | {loop:.3f} | {whole:.3f} "
                f"| {theirs / loop:.0f}× | {theirs / whole:.0f}× |"
            )


if __name__ == "__main__":
    main()
