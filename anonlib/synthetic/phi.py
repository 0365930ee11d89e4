"""The fake people, sites and identifiers planted in the synthetic corpus.

Everything here is invented and drawn from one ``random.Random`` so a seed always gives the same
people. Names are long and unusual on purpose: a leak test that finds ``Thistlewood`` in an output
file has found a real leak, not a coincidence. UIDs sit under a fake vendor root and embed the
MRN digits, as some archives do, so that a kept UID is also a kept MRN.

:class:`Recorder` collects each value *as it is written* into a file, by category (Safe Harbor
letter + a word), so that :attr:`PlantedPatient.values` holds exactly what a leak scan must not
find in de-identified output.
"""

from __future__ import annotations

import datetime as dt
import random
import warnings
from dataclasses import dataclass, field

__all__ = [
    "UID_ROOT",
    "Recorder",
    "UidFactory",
    "Site",
    "Person",
    "Names",
    "date_forms",
    "make_site",
    "make_person",
    "random_date",
    "random_time",
]

UID_ROOT = "1.2.826.0.1.3680043.10.543"
"""Fake vendor root of every instance UID in the corpus (not a registered root of ours)."""

_FEMALE = (
    "Marguerite", "Evangeline", "Philippa", "Rosamund", "Ottilie", "Henrietta", "Wilhelmina",
    "Genevieve", "Imogen", "Beatrix", "Clementine", "Seraphina", "Araminta", "Cordelia",
    "Eulalia", "Perpetua", "Leocadia", "Hortensia", "Marisol", "Zenobia", "Theodora",
    "Guinevere", "Ludmila", "Petronella",
)
_MALE = (
    "Thaddeus", "Bartholomew", "Cornelius", "Leopold", "Percival", "Augustin", "Florian",
    "Lysander", "Casimir", "Ignatius", "Ambrose", "Lucius", "Barnaby", "Desmond", "Fitzgerald",
    "Evander", "Peregrine", "Octavian", "Lazarus", "Benedikt", "Horatio", "Sebastiano",
    "Wendelin", "Crispin",
)
_FAMILY = (
    "Quennell", "Abernathy", "Vasquez-Ortiz", "Lindqvist", "Okonkwo", "Thistlewood",
    "Marchetti", "Brannigan", "Szymanski", "Haverford", "Kowalczyk", "Delacroix", "Nakashima",
    "Pemberton", "Ravensworth", "Achterberg", "Fairweather", "Galbraith", "Hollingsworth",
    "Ingersoll", "Jablonski", "Kristiansen", "Lockhart", "Nightingale", "Oyelaran",
    "Prendergast", "Quintero", "Rasmussen", "Standish", "Wetherby", "Yarborough", "Zielinski",
)
_CITIES = (
    "Millbrook Falls", "Easton Harbor", "Cedar Hollow", "Port Ardmore", "Ashby Crossing",
    "Glenmoor", "Larkspur Valley", "North Tamsworth",
)
_STREETS = (
    "Wrenfield Lane", "Juniper Ridge Road", "Old Mill Way", "Harrowgate Avenue",
    "Tanglewood Court", "Bellwether Street", "Copperbeech Drive", "Foxglove Terrace",
)
_STATES = ("NY", "MA", "OR", "VT", "WI", "NM")


def date_forms(day: dt.date) -> list[str]:
    """The ways a date is commonly written: DICOM DA, ISO, US, German and UK style."""
    return [
        day.strftime("%Y%m%d"),
        day.isoformat(),
        day.strftime("%m/%d/%Y"),
        day.strftime("%d.%m.%Y"),
        day.strftime("%d/%m/%Y"),
    ]


def random_date(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    """A date in [first, last]."""
    return first + dt.timedelta(days=rng.randint(0, (last - first).days))


def random_time(rng: random.Random) -> str:
    """A DICOM TM (HHMMSS) during the working day."""
    return f"{rng.randint(7, 18):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}"


class Recorder:
    """Identifying values by category, in the order they were first planted."""

    def __init__(self) -> None:
        self.values: dict[str, list[str]] = {}

    def add(self, category: str, *values: str) -> None:
        """Record non-empty values under ``category`` (duplicates are ignored)."""
        for value in values:
            bucket = self.values.setdefault(category, []) if value else []
            if value and value not in bucket:
                bucket.append(value)

    def put(self, ds: object, keyword: str, value: str, category: str) -> None:
        """Set ``ds.<keyword> = value`` and record the value (invalid values are planted on
        purpose for some patients, so pydicom's warning about them is silenced)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Invalid value for VR")
            setattr(ds, keyword, value)
        self.add(category, value)

    def date_text(self, day: dt.date, style: int) -> str:
        """``date_forms(day)[style]``, recorded under ``C_dates``."""
        text = date_forms(day)[style]
        self.add("C_dates", text)
        return text


class UidFactory:
    """Issues UIDs ``<root>.<MRN digits>.<session>.<n>`` and records each under ``R_uids``.

    Only UIDs that are written into a file may be drawn, so every recorded UID occurs.
    """

    def __init__(self, mrn: str, session: int, recorder: Recorder) -> None:
        self._prefix = f"{UID_ROOT}.{int(mrn) if mrn else 0}.{session}"
        self._next = 0
        self._recorder = recorder

    def new(self) -> str:
        self._next += 1
        uid = f"{self._prefix}.{self._next}"
        assert len(uid) <= 64
        self._recorder.add("R_uids", uid)
        return uid


@dataclass
class Site:
    """A hospital: equipment identity, staff and its patient-ID issuer."""

    institution: str
    address: str
    department: str
    station: str
    ae_title: str
    serial: str
    hostname: str
    issuer: str
    referring: str
    performing: str
    operator: str
    reading: str


@dataclass
class Person:
    """A fake patient. Empty strings mean "not known" (the attribute is written empty or left
    out, depending on the patient)."""

    label: str
    family: str
    given: str
    middle: str
    sex: str
    birth: dt.date | None
    mrn: str
    site: Site
    street: str = ""
    city: str = ""
    zip_code: str = ""
    state: str = ""
    phone: str = ""
    email: str = ""
    other_name: str = ""
    birth_name: str = ""
    mother_birth_name: str = ""
    other_ids: list[str] = field(default_factory=list)
    legacy_birth_date: bool = False
    patient_uid: str = ""
    recorder: Recorder = field(default_factory=Recorder)
    uids: UidFactory = field(init=False)

    @property
    def pn(self) -> str:
        """The DICOM PN value, ``Family^Given^Middle`` (empty for an unnamed patient)."""
        return "^".join(p for p in (self.family, self.given, self.middle) if p)

    @property
    def display(self) -> str:
        """The name as a clerk would type it in free text."""
        return f"{self.given} {self.family}".strip()


class Names:
    """Draws names without repetition across the whole corpus."""

    def __init__(self, rng: random.Random) -> None:
        self._family = rng.sample(_FAMILY, len(_FAMILY))
        self._given = {"F": rng.sample(_FEMALE, len(_FEMALE)), "M": rng.sample(_MALE, len(_MALE))}

    def family(self) -> str:
        return self._family.pop()

    def given(self, sex: str) -> str:
        return self._given[sex].pop()

    def pn(self, rng: random.Random, *, prefix: str = "") -> str:
        sex = rng.choice("FM")
        name = f"{self.family()}^{self.given(sex)}"
        return f"{name}^^{prefix}" if prefix else name


def _initials(text: str) -> str:
    return "".join(word[0] for word in text.replace("-", " ").split() if word[0].isalpha()).upper()


def make_site(rng: random.Random, names: Names, number: int) -> Site:
    """A hospital in one of the fake cities, with four staff members."""
    city = rng.choice(_CITIES)
    if number == 1:
        institution = f"{city} General Hospital"
    else:
        institution = f"St. {names.given('F')} Medical Center, {city}"
    short = _initials(institution)
    slug = institution.split(",")[0].lower().replace(".", "").replace(" ", "-")
    return Site(
        institution=institution,
        address=f"{rng.randint(100, 2999)} {rng.choice(_STREETS)}, {city}, "
        f"{rng.choice(_STATES)} {rng.randint(10000, 99999)}",
        department="Radiology",
        station=f"{short}-CT{rng.randint(1, 9):02d}",
        ae_title=f"{short}PACS{rng.randint(1, 9)}",
        serial=f"SN{rng.randint(10**7, 10**8 - 1)}",
        hostname=f"pacs{rng.randint(1, 9)}.{slug}.example.org",
        issuer=f"{short}_MRN",
        referring=names.pn(rng),
        performing=names.pn(rng),
        operator=names.pn(rng),
        reading=names.pn(rng, prefix="Dr."),
    )


def make_person(
    rng: random.Random,
    names: Names,
    label: str,
    site: Site,
    *,
    birth: dt.date | None,
    mrn: str | None = None,
    named: bool = True,
) -> Person:
    """A patient; ``mrn=""`` gives one without PatientID, ``named=False`` one without a name
    or contact details (an unidentified emergency admission)."""
    sex = rng.choice("FM")
    if mrn is None:
        mrn = str(rng.randint(10**7, 10**8 - 1))
    person = Person(label=label, family="", given="", middle="", sex=sex if named else "O",
                    birth=birth, mrn=mrn, site=site)
    if named:
        person.family, person.given = names.family(), names.given(sex)
        person.middle = names.given(sex)
        person.street = f"{rng.randint(10, 9999)} {rng.choice(_STREETS)}"
        person.city = rng.choice(_CITIES)
        person.state = rng.choice(_STATES)
        person.zip_code = f"{rng.randint(10000, 99999)}"
        person.phone = f"({rng.randint(201, 989)}) 555-{rng.randint(100, 199):04d}"
        person.email = f"{person.given.lower()}.{person.family.lower()}@mailbox.example.net"
        person.other_name = f"{person.family}^{names.given(sex)}"
        person.birth_name = f"{names.family()}^{person.given}" if sex == "F" else person.pn
        person.mother_birth_name = f"{names.family()}^{names.given('F')}"
        person.other_ids = [f"{_initials(site.institution)}{rng.randint(10**6, 10**7 - 1)}",
                            str(rng.randint(10**8, 10**9 - 1))]
    person.uids = UidFactory(mrn, rng.randint(100000, 999999), person.recorder)
    return person
