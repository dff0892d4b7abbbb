"""Made-up people and companies for simulated leads (deterministic from the caller's random)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

GIVEN = (
    "Aiko", "Haruto", "Yui", "Sota", "Mei", "Ren", "Hina", "Yuto", "Sakura", "Kaito",
    "Emma", "Liam", "Olivia", "Noah", "Mia", "Lucas", "Ana", "Mateo", "Priya", "Arjun",
    "Chen", "Lin", "Min-jun", "Ji-woo", "Sofia", "Jonas", "Lea", "Omar", "Nadia", "Tomas",
)  # fmt: skip
FAMILY = (
    "Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura",
    "Kobayashi", "Kato", "Smith", "Garcia", "Muller", "Rossi", "Silva", "Kim", "Wang",
    "Patel", "Nguyen", "Hansen", "Novak", "Costa", "Dubois", "Jensen", "Okafor",
)  # fmt: skip
COMPANY_WORDS = (
    "Sakura", "Fuji", "Setouchi", "Hokuto", "Asahi", "Kaze", "Midori", "Aozora", "Tsubasa",
    "Nami", "Northwind", "Bluepeak", "Crescent", "Ironbridge", "Lumen", "Meridian", "Orbit",
    "Pioneer", "Quartz", "Riverstone", "Summit", "Tidal", "Vertex", "Willow", "Zenith",
)  # fmt: skip
COMPANY_TRADES = (
    "Systems", "Logistics", "Robotics", "Foods", "Pharma", "Retail", "Finance", "Energy",
    "Motors", "Software", "Textiles", "Analytics", "Health", "Shipping", "Media",
)  # fmt: skip
COMPANY_FORMS = ("KK", "Inc.", "Ltd.", "GmbH", "Co.", "Group")
# (title, weight): who fills in forms; fit rules reward seniority and penalise students.
TITLES = (
    ("Head of Sales", 6), ("Sales Director", 6), ("Chief Revenue Officer", 2),
    ("Marketing Manager", 10), ("IT Manager", 8), ("Operations Manager", 6),
    ("Chief Information Officer", 2), ("Director of Customer Success", 3),
    ("Sales Representative", 10), ("Engineer", 10), ("Analyst", 8), ("Consultant", 6),
    ("Student", 3), (None, 8),
)  # fmt: skip


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    company: str
    title: str | None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def company(rng: random.Random) -> str:
    """A company name such as "Setouchi Shipping KK"."""
    return f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_TRADES)} {rng.choice(COMPANY_FORMS)}"


def person(rng: random.Random, serial: str) -> Person:
    """A lead's contact; `serial` makes the email unique within a simulation."""
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    firm = company(rng)
    titles, weights = zip(*TITLES, strict=True)
    title = rng.choices(titles, weights)[0]
    domain = _slug(firm.rsplit(" ", 1)[0]) + ".example"
    email = f"{_slug(given)}.{_slug(family)}.{serial}@{domain}"
    return Person(name=f"{given} {family}", email=email, company=firm, title=title)
