#!/usr/bin/env bash
# Boai's reductions against py-ard 2.4.2 (NMDP's reference library) on the same IPD-IMGT/HLA
# 3.58.0 files, offline: py-ard from PyPI into a virtual environment, the release files
# served to it from ../shared as a file:// mirror. Prints the agreement table (every
# difference in a documented class, else exit 1) and the speed table.
#   benches/pyard/run.sh            (needs PyPI once, for the virtual environment)
set -euo pipefail
cd "$(dirname "$0")/../.."
shared=${BOAI_SHARED:-$(cd .. && pwd)/shared}
work=${BOAI_PYARD_WORK:-$PWD/target/pyard}
venv=$work/venv
mkdir -p "$work"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet py-ard==2.4.2
fi
# py-ard's layout: <url><release without dots>/wmda/<file> and Latest/allelelist/Allelelist.<release>.txt
mirror=$work/mirror
mkdir -p "$mirror/3580/wmda" "$mirror/Latest/allelelist"
for f in hla_nom_g hla_nom_p rel_dna_ser rel_ser_ser hla_nom; do
  ln -sf "$shared/imgt-hla/wmda/$f.txt" "$mirror/3580/wmda/$f.txt"
done
ln -sf "$shared/imgt-hla/Allelelist.txt" "$mirror/Latest/allelelist/Allelelist.3580.txt"
cargo build --release --quiet
export BOAI_SHARED=$shared BOAI_PYARD_WORK=$work BOAI_BIN=$PWD/target/release/boai
export IMGT_HLA_URL=file://$mirror/
"$venv/bin/python" benches/pyard/make_inputs.py
"$venv/bin/python" benches/pyard/compare.py speed
"$venv/bin/python" benches/pyard/compare.py
