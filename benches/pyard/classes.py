"""The documented classes of difference between Boai and py-ard 2.4.2 (ARCHITECTURE.md,
"Reductions and py-ard"). Each class is a rewrite of one side, grounded in the release files
read here independently of both programs; a difference is explained when the rewrites of its
classes make the two sides name the same set. The label lists the classes that were needed.
"""

import os
import re

FIELD = re.compile(r"^([A-Z0-9]+)\*([0-9:]+)([A-Z]?)$")


def two_fields(name):
    m = FIELD.match(name)
    if not m:
        return name
    locus, fields, _ = m.groups()
    return f"{locus}*{':'.join(fields.split(':')[:2])}"


def is_null_name(name):
    return "*" in name and name.endswith("N")


class Facts:
    """What the release files say, read plainly."""

    def __init__(self, shared):
        imgt = os.path.join(shared, "imgt-hla")
        with open(os.path.join(imgt, "Allelelist.txt")) as f:
            self.alleles = [l.strip().split(",")[1] for l in f if l.startswith("HLA")]
        self.names = set(self.alleles)
        self.g_of = {}  # allele → official G name
        self.pyard_g = {}  # py-ard's G name (first member, three fields) → official
        self.g_lgx = {}  # allele → two fields of its group's first member
        self.g_members = {}  # official G name → its alleles
        for cols in self._rows(os.path.join(imgt, "wmda/hla_nom_g.txt")):
            locus, members, group = cols[0], cols[1].split("/"), cols[2]
            if not group:
                continue
            official = locus + group
            first = (locus + members[0]).rstrip("NLSQCA").split(":")
            # py-ard names a group after its first member, at three fields (`:01` added
            # to a two-field one).
            self.pyard_g[":".join((first + ["01"])[:3]) + "G"] = official
            self.g_members[official] = [locus + m for m in members]
            for m in members:
                self.g_of[locus + m] = official
                self.g_lgx[locus + m] = two_fields(locus + members[0])
        self.p_of = {}
        for cols in self._rows(os.path.join(imgt, "wmda/hla_nom_p.txt")):
            locus, members, group = cols[0], cols[1].split("/"), cols[2]
            if group:
                for m in members:
                    self.p_of[locus + m] = locus + group
        self.parents = {}  # antigen → its broad, or the antigen an associated one belongs to
        for cols in self._rows(os.path.join(imgt, "wmda/rel_ser_ser.txt")):
            locus = "Cw" if cols[0] == "C" else cols[0]
            for child in (cols[2] + "/" + cols[3]).split("/"):
                if child:
                    self.parents.setdefault(locus + child, set()).add(locus + cols[1])
        self.assigned = {}  # allele → antigens in the unambiguous, possible, assumed columns
        self.carrying = {}  # antigen → alleles assigned it in any column
        for cols in self._rows(os.path.join(imgt, "wmda/rel_dna_ser.txt")):
            locus = cols[0].rstrip("*")
            label = {"C": "Cw"}.get(locus, locus[:2] if len(locus) > 1 else locus)
            antigens = set()
            for col in cols[2:5]:
                antigens |= {label + a for a in col.split("/") if a not in ("", "0", "?")}
            self.assigned[f"{locus}*{cols[1]}"] = antigens
            # a serological typing is read through all four columns (matching rules)
            for a in antigens | {label + a for a in cols[5].split("/") if a not in ("", "0", "?")}:
                self.carrying.setdefault(a, []).append(f"{locus}*{cols[1]}")

        self.protein_antigens = {}  # two-field name → antigens assigned to its expressed alleles
        for allele, antigens in self.assigned.items():
            if not allele.endswith("N"):
                self.protein_antigens.setdefault(two_fields(allele), set()).update(antigens)
        self.macs = {}
        with open(os.path.join(shared, "mac/alpha.v3.subset.txt")) as f:
            for line in f.read().splitlines()[2:]:
                parts = line.split("\t")
                if len(parts) >= 3:
                    self.macs[parts[1]] = parts[2].split("/")
        self.pyard_alleles = {}  # reduction → allele name → py-ard's answer for it alone
        self.p_members = {}
        for allele, group in self.p_of.items():
            self.p_members.setdefault(group, []).append(allele)
        self.renamed = {}  # deleted name → the name it was renamed or shown identical to
        with open(os.path.join(imgt, "Deleted_alleles.txt")) as f:
            for line in f:
                cols = line.strip().split(",", 2)
                if len(cols) == 3 and cols[0].startswith("HLA"):
                    # the successor is the last name the description gives
                    names = re.findall(r"[A-Z0-9]+\*[0-9:]+[A-Z]?", cols[2])
                    if names:
                        self.renamed[cols[1]] = names[-1]
        self.children = {}
        for child, parents in self.parents.items():
            for p in parents:
                self.children.setdefault(p, set()).add(child)

    def load_pyard_allele_answers(self, to, alleles, answers):
        self.pyard_alleles[to] = dict(zip(alleles, answers))

    @staticmethod
    def _rows(path):
        with open(path) as f:
            for line in f:
                if not line.startswith("#") and line.strip():
                    yield line.rstrip("\n").split(";")

    def under(self, name):
        """Alleles a (possibly shortened) name stands for."""
        if not hasattr(self, "_under"):
            self._under = {}
            for a in self.alleles:
                locus, fields = a.split("*")
                parts = fields.rstrip("NLSQCA").split(":")
                keys = {f"{locus}*{':'.join(parts[:n])}" for n in range(1, len(parts) + 1)}
                for key in keys | {a}:
                    self._under.setdefault(key, []).append(a)
        return self._under.get(name, [])


def null_renderings(facts, null_name):
    """What py-ard may write for the null alleles a Boai null name stands for: nothing, or
    the two-field name without the suffix, or the G group's (official or py-ard) name, or
    its lgx."""
    out = set()
    for a in facts.under(null_name.rstrip("N")) or facts.under(null_name):
        if not a.endswith("N"):
            continue
        out.add(two_fields(a))
        out.add(a)
        out |= facts.assigned.get(a, set())
        if a in facts.g_of:
            out |= {facts.g_of[a], facts.g_lgx[a]}
            # py-ard reads a null's serology through its G group's two-field name
            out |= facts.protein_antigens.get(facts.g_lgx[a], set())
            out |= {k for k, v in facts.pyard_g.items() if v == facts.g_of[a]}
    return out


def tokens(typing):
    """The names of an allele list with their locus (`A*01:01/02` style is not used here)."""
    return typing.split("/")


def mac_names(facts, token):
    """The names a MAC token expands to (`A*01:AB` → A*01:01, A*01:02); [] if not a MAC."""
    locus, _, fields = token.partition("*")
    group, _, code = fields.partition(":")
    return [
        f"{locus}*{entry}" if ":" in entry else f"{locus}*{group}:{entry}"
        for entry in facts.macs.get(code, [])
    ]


def stands_for(facts, token):
    """Release alleles a name stands for, read as Boai reads it (expressed ones unless all
    are null): an allele or shortened name, an XX code, a MAC, a P group, a deleted name
    with a successor, a serological antigen with its family; None for anything else."""
    if "*" not in token:
        family, todo = set(), [token]
        while todo:  # the antigen, everything below it, and its broads
            a = todo.pop()
            if a not in family:
                family.add(a)
                todo.extend(facts.children.get(a, ()))
        above = [token]
        while above:  # and everything above it
            for p in facts.parents.get(above.pop(), ()):
                if p not in family:
                    family.add(p)
                    above.append(p)
        under = sorted({x for a in family for x in facts.carrying.get(a, [])})
    elif token in facts.renamed:
        return stands_for(facts, facts.renamed[token])
    elif token.endswith("P") and token in facts.p_members:
        under = facts.p_members[token]
    elif token.endswith(":XX"):
        under = facts.under(token[: -len(":XX")])
        if not under:  # the XX code of a broad stands for its splits' (`DRB1*02:XX`)
            locus, group = token[: -len(":XX")].split("*")
            label = {"C": "Cw"}.get(locus, locus[:2] if len(locus) > 1 else locus)
            for split in facts.children.get(label + str(int(group)), ()):
                digits = split[len(label):]
                if digits.isdigit() and len(digits) <= 2:
                    under += facts.under(f"{locus}*{int(digits):02d}")
    elif mac_names(facts, token):
        under = [a for name in mac_names(facts, token) for a in facts.under(name)]
    else:
        under = facts.under(token)
    if not under:
        return None
    expressed = [a for a in under if not a.endswith("N")]
    return expressed if expressed and not token.endswith("N") else under


def rewrites(facts, to, typing):
    """(class, rewrite of (ours, theirs)) in the order they are tried."""

    def deleted_name(ours, theirs):
        # py-ard keeps a deleted name as it is written; Boai reads its successor.
        if not any(t in facts.renamed for t in tokens(typing)):
            return ours, theirs
        return name_vs_alleles(ours, theirs)

    def name_vs_alleles(ours, theirs):
        # py-ard reduces a shortened name otherwise than the alleles it stands for; read the
        # typing as those alleles, each with py-ard's own answer for it.
        answers = facts.pyard_alleles.get(to, {})
        out = set()
        for token in tokens(typing):
            alleles = stands_for(facts, token)
            if alleles is None or any(answers.get(a) is None for a in alleles):
                return ours, theirs
            for a in alleles:
                out |= set(answers[a].split("/")) if answers[a] else set()
        return ours, out

    def three_field_serology(ours, theirs):
        # py-ard gives no serology for a shortened three-field name or a G group name.
        def shortened_or_g(t):
            return t not in facts.names and (t.count(":") == 2 or t.endswith("G"))

        if theirs or not all(shortened_or_g(t) for t in tokens(typing)):
            return ours, theirs
        return ours, set(ours)

    def protein_shared(ours, theirs):
        # The file leaves the allele unassigned; Boai gives it its protein's antigens.
        names = tokens(typing)
        if theirs or not all(n in facts.names and not facts.assigned.get(n) for n in names):
            return ours, theirs
        shared = set().union(*(facts.protein_antigens.get(two_fields(n), set()) for n in names))
        return ours, shared if shared == ours else theirs

    def unassigned_antigens(ours, theirs):
        # Antigens the file assigns to none of the alleles the typing stands for, nor is a
        # broad or parent of one assigned: py-ard's additions (`B*15:01` → B70).
        assigned = set()
        for token in tokens(typing):
            alleles = stands_for(facts, token)
            if alleles is None:
                return ours, theirs
            for a in alleles:
                assigned |= facts.assigned.get(a, set())
                assigned |= facts.protein_antigens.get(two_fields(a), set())
        closure = set(assigned)
        while True:
            more = closure.union(*(facts.parents.get(p, set()) for p in closure))
            if more == closure:
                break
            closure = more
        return ours, {t for t in theirs if "*" in t or t in closure}

    def mac_suffix(ours, theirs):
        # A MAC entry written as a shortened name with its suffix (`B*15:245Q`): Boai reads
        # the alleles carrying it, py-ard drops the name.
        suffixed = set()
        for token in tokens(typing):
            for name in mac_names(facts, token):
                m = FIELD.match(name)
                if m and m.group(3) and name not in facts.names:
                    suffixed.add(two_fields(name))
        return {o for o in ours if o in theirs or two_fields(o) not in suffixed}, theirs

    def serology_kept(ours, theirs):
        # A serological typing reduced to serology stays as written; py-ard widens it to
        # antigens of its family and of the alleles carrying them.
        if "*" in typing or not ours <= theirs:
            return ours, theirs
        related = set(ours)
        for token in tokens(typing):
            alleles = stands_for(facts, token) or []
            related |= {x for a in alleles for x in facts.assigned.get(a, set())}
            related |= facts.parents.get(token, set()) | facts.children.get(token, set())
        closure = set(related)
        while True:
            more = closure.union(*(facts.parents.get(p, set()) | facts.children.get(p, set()) for p in closure))
            if more == closure:
                break
            closure = more
        return ours, {t for t in theirs if t in ours or t not in closure}

    def lgx_p_over_g(ours, theirs):
        # Where an allele's G group and P group have different two-field names, py-ard
        # sometimes gives the P group's (`DQA1*03:03:08:01` → DQA1*03:01).
        def p_names(n):
            return {two_fields(facts.p_of[a]) for a in facts.under(n) if a in facts.p_of}

        ours2 = {o for o in ours if o in theirs or not (p_names(o) & theirs & ours)}
        theirs2 = set()
        for t in theirs:
            swapped = [o for o in ours - theirs if t in p_names(o)]
            theirs2 |= {swapped[0]} if t not in ours and swapped else {t}
        return ours2, theirs2

    def nulls(ours, theirs):
        kept = {n for n in ours if is_null_name(n)}
        if not kept:
            return ours, theirs
        rendered = set().union(*(null_renderings(facts, n) for n in kept))
        rest = ours - kept
        return rest, {t for t in theirs if t in rest or t not in rendered}

    def nulls_of_a_name(ours, theirs):
        # py-ard reduces the null members of an XX code, a MAC or a shortened name too.
        def all_null(t):
            under = facts.under(t) or facts.under(t.rstrip("N")) or facts.g_members.get(t, [])
            return bool(under) and all(a.endswith("N") for a in under)

        return ours, {t for t in theirs if t in ours or not all_null(t)}

    def lgx_ungrouped(ours, theirs):
        def boai_form(t):
            if t in facts.names and t not in facts.g_of and t not in facts.p_of:
                m = FIELD.match(t)
                return two_fields(t) + m.group(3)
            return t

        return ours, {boai_form(t) for t in theirs}

    def g_official(ours, theirs):
        return ours, {facts.pyard_g.get(t, t) for t in theirs}

    def p_ungrouped(ours, theirs):
        return ours, {two_fields(t) if t in facts.names and t not in facts.p_of else t for t in theirs}

    def no_equivalent(ours, theirs):
        return {o for o in ours if "*" not in o or is_null_name(o) or facts_unassigned(facts, o) is False}, theirs

    def broad_added(ours, theirs):
        parents = set().union(set(), *(facts.parents.get(o, set()) for o in ours))
        # transitively: a split's broad, an associated antigen's split and its broad
        while True:
            more = parents.union(*(facts.parents.get(p, set()) for p in parents))
            if more == parents:
                break
            parents = more
        return ours, {t for t in theirs if t in ours or t not in parents}

    table = {
        "lgx": [
            ("deleted-name-read-as-successor", deleted_name),
            ("py-ard-name-vs-its-alleles", name_vs_alleles),
            ("nulls-of-a-name-dropped", nulls_of_a_name),
            ("mac-entry-with-suffix", mac_suffix),
            ("lgx-p-group-over-g-group", lgx_p_over_g),
            ("null-kept-null", nulls),
            ("lgx-at-two-fields-outside-groups", lgx_ungrouped),
        ],
        "g": [
            ("deleted-name-read-as-successor", deleted_name),
            ("g-ungrouped-members-listed", name_vs_alleles),
            ("nulls-of-a-name-dropped", nulls_of_a_name),
            ("mac-entry-with-suffix", mac_suffix),
            ("null-kept-null", nulls),
            ("g-official-name", g_official),
        ],
        "p": [
            ("deleted-name-read-as-successor", deleted_name),
            ("py-ard-name-vs-its-alleles", name_vs_alleles),
            ("nulls-of-a-name-dropped", nulls_of_a_name),
            ("mac-entry-with-suffix", mac_suffix),
            ("null-kept-null", nulls),
            ("p-ungrouped-two-fields", p_ungrouped),
        ],
        "serology": [
            ("deleted-name-read-as-successor", deleted_name),
            ("py-ard-name-vs-its-alleles", name_vs_alleles),
            ("nulls-of-a-name-dropped", nulls_of_a_name),
            ("null-kept-null", nulls),
            ("serology-typing-kept", serology_kept),
            ("mac-entry-with-suffix", mac_suffix),
            ("serology-of-three-field-names", three_field_serology),
            ("serology-protein-shared", protein_shared),
            ("serology-unassigned-antigen-added", unassigned_antigens),
            ("serology-no-equivalent", no_equivalent),
            ("serology-broad-added", broad_added),
        ],
    }
    return table[to]


def facts_unassigned(facts, name):
    """True when no allele of the two-field name is assigned an antigen."""
    alleles = [a for a in facts.under(name) if not a.endswith("N")]
    return bool(alleles) and not any(facts.assigned.get(a) for a in alleles)


def classify(facts, to, typing, ours, theirs):
    if ours is None:
        # Boai refuses serology at a locus without serological antigens; py-ard gives ''
        # or the names unchanged.
        if to == "serology" and not any(
            typing.startswith(l)
            for l in ("A*", "B*", "C*", "DRB1*", "DRB3*", "DRB4*", "DRB5*", "DQB1*", "DPB1*")
        ):
            return "serology-at-a-locus-without-antigens"
        return "UNEXPLAINED"
    if theirs is None:
        # py-ard refuses the official name of a G group it names otherwise.
        renamed_groups = set(facts.pyard_g.values()) - set(facts.pyard_g)
        if all(t in renamed_groups for t in tokens(typing)):
            return "g-official-name"
        return "UNEXPLAINED"
    a = set(ours.split("/")) if ours else set()
    b = set(theirs.split("/")) if theirs else set()
    used = []
    for name, rewrite in rewrites(facts, to, typing):
        a2, b2 = rewrite(a, b)
        if (a2, b2) != (a, b):
            used.append(name)
            a, b = a2, b2
        if a == b:
            return " + ".join(used)
    return "UNEXPLAINED"
