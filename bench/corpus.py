"""Deterministic synthetic knowledge-base prose: varied English sentences from templates and
word lists, seeded, so every run embeds exactly the same text."""

from __future__ import annotations

import random

SUBJECTS = [
    "the billing service", "our support team", "the warehouse manager", "the mobile app",
    "the finance department", "each regional office", "the onboarding checklist",
    "the security review board", "the customer portal", "the night shift supervisor",
    "the data retention policy", "the shipping partner", "the quality assurance group",
    "the payroll system", "the legal team", "the product owner", "the reporting dashboard",
    "the procurement process", "the help desk", "the travel policy", "the backup job",
    "the marketing calendar", "the field technician", "the returns desk",
]  # fmt: skip
VERBS = [
    ("review", "reviews"), ("update", "updates"), ("approve", "approves"),
    ("archive", "archives"), ("schedule", "schedules"), ("monitor", "monitors"),
    ("publish", "publishes"), ("refund", "refunds"), ("escalate", "escalates"),
    ("record", "records"), ("verify", "verifies"), ("reconcile", "reconciles"),
    ("prioritise", "prioritises"), ("document", "documents"), ("forward", "forwards"),
    ("inspect", "inspects"), ("renew", "renews"), ("summarise", "summarises"),
]  # fmt: skip
OBJECTS = [
    "every open invoice", "the quarterly forecast", "damaged parcels", "expense claims",
    "access requests", "the incident log", "late deliveries", "supplier contracts",
    "password resets", "customer complaints", "the inventory count", "overtime hours",
    "software licences", "the release notes", "duplicate orders", "safety inspections",
    "the training records", "warranty claims", "the audit trail", "shipping labels",
]  # fmt: skip
ADVERBS = [
    "carefully", "automatically", "by hand", "twice", "without exception", "in batches",
    "as soon as possible", "with a second reviewer", "on request", "in priority order",
]  # fmt: skip
TIMES = [
    "every Monday", "at the end of each month", "before the audit", "during the night",
    "within two working days", "after every release", "once a quarter", "each morning",
    "before noon on Fridays", "at the start of the fiscal year",
]  # fmt: skip
PLACES = [
    "Tallinn", "the Lisbon office", "the central warehouse", "the Berlin data centre",
    "the Toronto branch", "the main plant", "the Nairobi hub", "the head office",
]  # fmt: skip
TEAMS = ["the duty manager", "the finance controller", "the help desk", "the site lead",
         "the compliance officer", "the account owner"]  # fmt: skip
REASONS = [
    "the regulator requires it", "customers asked for faster answers",
    "errors were found in the last audit", "the old process was too slow",
    "the volume doubled last year", "two teams kept doing the same work",
]  # fmt: skip
CONDITIONS = [
    "a payment fails twice", "the parcel arrives damaged", "the request lacks a signature",
    "the amount exceeds five thousand euros", "the customer has no account",
    "the system reports a mismatch", "a deadline is missed",
]  # fmt: skip
ADJECTIVES = ["new", "revised", "shared", "internal", "automated", "temporary", "annual",
              "regional", "detailed", "simplified"]  # fmt: skip
NOUNS = ["procedure", "report", "form", "workflow", "guideline", "template", "checklist",
         "schedule", "budget", "contract"]  # fmt: skip
UNITS = ["days", "hours", "working days", "weeks"]

TEMPLATES = [
    "{S} {v3} {o} {adv} {t}.",
    "In {place}, {s} {v3} {o} because {reason}.",
    "According to the {adj} {noun}, {s} must {v} {o} within {n} {unit}.",
    "{S} was introduced in {place} in {year}, and it still {v3} {o} {t}.",
    "If {cond}, {s} should {v} {o} and notify {team}.",
    "The {adj} {noun} explains how {s} {v3} {o}, which saves about {n} {unit} a year.",
    "Customers often ask whether {s} {v3} {o}; the short answer is yes, {t}.",
    "About {pct} percent of {o} are handled {adv} {t}.",
    "Unlike {s2}, {s} {v3} {o} {adv}.",
    "Questions about {o} go to {team}, who will {v} them {t}.",
    "Since {year}, {s} has been required to {v} {o} {adv}.",
    "Do not {v} {o} before {team} has checked the {adj} {noun}.",
    "Before {s} can {v} {o}, {cond2} must be resolved by {team}.",
    "The {noun} for {o} was last revised in {year} after {reason}.",
]


def sentence(rng: random.Random) -> str:
    subject, other = rng.sample(SUBJECTS, 2)
    base, third = rng.choice(VERBS)
    text = rng.choice(TEMPLATES).format(
        S=subject[0].upper() + subject[1:],
        s=subject,
        s2=other,
        v=base,
        v3=third,
        o=rng.choice(OBJECTS),
        adv=rng.choice(ADVERBS),
        t=rng.choice(TIMES),
        place=rng.choice(PLACES),
        reason=rng.choice(REASONS),
        cond=rng.choice(CONDITIONS),
        cond2=rng.choice(CONDITIONS).replace("a ", "the issue where a ", 1),
        team=rng.choice(TEAMS),
        adj=rng.choice(ADJECTIVES),
        noun=rng.choice(NOUNS),
        n=rng.randint(2, 40),
        pct=rng.randint(5, 95),
        unit=rng.choice(UNITS),
        year=rng.randint(2009, 2026),
    )
    return text[0].upper() + text[1:]


def paragraph(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(3, 7)))


def document(rng: random.Random, paragraphs: int) -> str:
    return "\n\n".join(paragraph(rng) for _ in range(paragraphs))


def documents(count: int, *, paragraphs: int, seed: int = 20261124) -> list[tuple[str, str]]:
    """`count` (title, text) pairs, the same for a given seed."""
    rng = random.Random(seed)
    out = []
    for n in range(1, count + 1):
        title = (
            f"Handbook {n}: {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} for {rng.choice(OBJECTS)}"
        )
        out.append((title, document(rng, paragraphs)))
    return out


def passages(count: int, *, words: int, seed: int = 7) -> list[str]:
    """`count` passages of about `words` words (chunk-like texts)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts: list[str] = []
        while sum(len(p.split()) for p in parts) < words:
            parts.append(sentence(rng))
        out.append(" ".join(parts))
    return out
