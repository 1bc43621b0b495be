"""The inputs of the comparison, from ../shared: the distinct allele lists of four sources
(one file each) and the whole genotypes of the two corpora (genotypes.txt)."""

import gzip
import os
import re

SHARED = os.environ["BOAI_SHARED"]
WORK = os.environ["BOAI_PYARD_WORK"]
SEROLOGY = {"A": "A", "B": "B", "C": "Cw", "DPB1": "DP", "DQB1": "DQ", "DRB1": "DR"}


def lists_of(gl):
    return [l for l in re.split(r"[\^|+~]", gl) if l]


def write(name, items):
    with open(os.path.join(WORK, name), "w") as f:
        for item in items:
            f.write(item + "\n")


def main():
    with open(os.path.join(SHARED, "imgt-hla/Allelelist.txt")) as f:
        alleles = [l.strip().split(",")[1] for l in f if l.startswith("HLA")]
    write("lists-alleles.txt", alleles)
    two = []
    seen = set()
    for a in alleles:
        locus, fields = a.split("*")
        parts = fields.rstrip("NLSQCA").split(":")
        if len(parts) > 2:
            name = f"{locus}*{parts[0]}:{parts[1]}"
            if name not in seen:
                seen.add(name)
                two.append(name)
    write("lists-two-field.txt", two)

    genotypes = []
    for f in ["don", "pat"]:
        with gzip.open(os.path.join(SHARED, f"corpora/wmda-mvt3/{f}.gl.txt.gz"), "rt") as lines:
            genotypes += [l.strip().split("%", 1)[1] for l in lines if l.strip()]
    wmda = sorted({l for g in genotypes for l in lists_of(g)})
    write("lists-wmda-mvt3.txt", wmda)

    corpus = []
    header = None
    with open(os.path.join(SHARED, "corpora/atlas-donors/donors-20k.tsv")) as f:
        for line in f:
            cells = line.rstrip("\n").split("\t")
            if header is None:
                header = cells
                continue
            loci = []
            for locus in ["A", "B", "C", "DPB1", "DQB1", "DRB1"]:
                i = header.index(locus + "_1")
                pair = [c for c in cells[i : i + 2] if c and c != "NULL"]
                if pair:
                    named = [(locus if c.startswith("*") else SEROLOGY[locus]) + c for c in pair]
                    loci.append("+".join(named))
            if loci:
                corpus.append("^".join(loci))
    write("lists-corpus-20k.txt", sorted({l for g in corpus for l in lists_of(g)}))
    write("genotypes-wmda.txt", genotypes)
    write("genotypes-corpus.txt", corpus[:CORPUS_SPEED_SAMPLE])


# py-ard takes about 30 ms a corpus genotype (XX codes, MACs): a sample keeps the run short.
CORPUS_SPEED_SAMPLE = 500


if __name__ == "__main__":
    main()
