"""Make pin2vec's sample data: an engagement log in three formats, a catalogue and bad logs.

``python data_samples/make_samples.py [--output DIR]`` rewrites every file from a fixed seed; the
same numpy and pyarrow versions give byte-identical files. See ``data_samples/README.md`` for the
planted structure. Only numpy and pyarrow are used, so the script runs anywhere pin2vec installs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ACTIONS = ("view", "closeup", "save", "click")

# Per category: title template and three word lists. Word {a} follows an item's first latent
# coordinate and {b} its second, so items near each other in the latent map share words and the
# related items printed by `pin2vec run` read as related; {c} is a free detail.
CATEGORIES = {
    "home-decor": ("{a} {c} {b}",
                   "Rustic Farmhouse Coastal Nordic Minimalist Mid-century Industrial Bohemian",
                   "coffee table|bookshelf|floor lamp|wall shelf|armchair|rug|mirror|headboard",
                   "oak walnut pine linen brass rattan marble velvet"),
    "recipes": ("{a} {c} {b}", "Thai Italian Mexican Indian Greek Japanese Moroccan Korean",
                "soup|salad|noodle bowl|curry|tacos|flatbread|stir-fry|stew",
                "chicken lentil shrimp tofu chickpea beef mushroom spinach"),
    "travel": ("{c} {b} for {a}", "Lisbon|Kyoto|Iceland|Patagonia|Tuscany|Bali|Morocco|New Zealand",
               "itinerary|packing list|food guide|hiking guide|hotel picks|photo spots|budget tips|"
               "road trip", "Weekend 7-day Winter Summer Family Solo Slow Spring"),
    "fashion": ("{a} {c} {b}", "Vintage Streetwear Preppy Boho Classic Athleisure Minimal Grunge",
                "denim jacket|midi dress|trench coat|sneakers|sweater|blazer|ankle boots|tote bag",
                "black camel navy olive cream rust grey blush"),
    "fitness": ("{c} {a} {b}", "HIIT yoga pilates kettlebell running mobility barre strength",
                "routine plan challenge circuit flow workout program warm-up",
                "Beginner 20-minute Morning Full-body Low-impact At-home 4-week Advanced"),
    "diy": ("{c} {a} {b}", "pallet|macrame|resin|clay|mason jar|stencil|upcycled|copper pipe",
            "shelf|planter|coasters|wall hanging|lamp|organizer|candle holder|sign",
            "Easy Weekend Kids' 5-minute Budget Rustic Modern Gift"),
    "gardening": ("{c} {a} {b}", "succulent herb tomato rose vegetable cactus fern lavender",
                  "garden|planter box|care guide|raised bed|window box|terrarium|border|pots",
                  "Small-space Balcony Beginner Shade Drought-tolerant Vertical Indoor Cottage"),
    "art": ("{a} {b} {c}", "Watercolor|Ink|Acrylic|Charcoal|Oil pastel|Gouache|Linocut|Digital",
            "landscape|portrait|botanicals|cityscape|still life|seascape|animals|abstract",
            "study tutorial sketch series practice technique palette prompt"),
    "weddings": ("{a} {b} in {c}", "Rustic Boho Garden Beach Vintage Modern Winter Romantic",
                 "centerpieces|bouquet|invitations|cake|arch|table setting|hairstyle|favors",
                 "blush|sage|ivory|burgundy|dusty blue|gold|terracotta|lavender"),
    "beauty": ("{c} {a} {b}", "natural smoky glam dewy matte bold no-makeup bridal",
               "eye look|lip color|skincare routine|nail art|updo|brows|contour|braid",
               "Everyday Evening 5-minute Summer Autumn Holiday Easy Festival"),
}
CATEGORY_SHARES = (26, 24, 22, 20, 20, 19, 18, 18, 17, 16)  # percent of the catalogue
# UTC offsets (minutes) of users' home zones and their shares; JSON-lines times are written in them.
ZONES = ((0, 0.40), (-300, 0.18), (-480, 0.12), (60, 0.12), (330, 0.10), (540, 0.08))
# Relative chance that a session starts in each local hour (lunch and evening peaks).
HOURS = np.array([1, 1, 1, 1, 1, 2, 4, 6, 6, 5, 5, 6, 9, 8, 6, 6, 6, 7, 9, 12, 14, 13, 9, 4], float)


@dataclass(frozen=True)
class SampleConfig:
    """Knobs of the simulated engagement log (the defaults made the committed files)."""

    seed: int = 20260901
    users: int = 1800
    items: int = 3000
    start: int = 1788220800  # 2026-09-01T00:00:00Z
    days: int = 42  # six weeks, so a time split holds out the last ~8 days
    sessions_per_user: float = 1.5  # log-normal median of extra visits (heavy-tailed activity)
    bounce: float = 0.12  # visits that engage with one item only (dropped by the pipeline)
    mean_steps: float = 6.0  # mean distinct steps of a non-bounce visit
    appeal_zipf: float = 0.8  # item appeal ~ rank ** -appeal_zipf (Zipf-like popularity)
    drift: float = 0.07  # sd of the latent step: how far a session wanders per item
    appeal_in_session: float = 0.05  # weight of appeal (vs latent closeness) within a session
    taste_width: float = 0.15  # how tightly a visit starts near the user's taste point
    switch: float = 0.08  # chance per step of hopping to another of the user's interests
    trending: float = 0.03  # chance per step of a globally trending item (home-feed noise)
    split: tuple[float, float, float] = (0.65, 0.25, 0.10)  # users in parquet / csv / jsonl

    def __post_init__(self):
        if self.users < 10 or self.days < 7 or not 0 < self.drift < 0.5:
            raise ValueError("need users >= 10, days >= 7 and 0 < drift < 0.5")
        if abs(sum(self.split) - 1.0) > 1e-9:
            raise ValueError(f"split shares must add up to 1, got {self.split}")


@dataclass(frozen=True)
class Catalog:
    """The simulated catalogue; row ``k`` of every field describes one item."""

    item_ids: list[str]
    category: np.ndarray  # int index into CATEGORIES
    position: np.ndarray  # [n, 2] latent coordinates on the unit torus
    appeal: np.ndarray
    titles: list[str]


def _pick(rng: np.random.Generator, weights: np.ndarray) -> int:
    """One index drawn with probability proportional to ``weights`` (cumsum + search: stable)."""
    cdf = np.cumsum(weights)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(cdf) - 1))


def _torus_sq(delta: np.ndarray) -> np.ndarray:
    delta = np.abs(delta)
    delta = np.minimum(delta, 1.0 - delta)
    return (delta**2).sum(axis=-1)


def make_catalog(rng: np.random.Generator, config: SampleConfig) -> Catalog:
    """Items with a category, a latent 2-D position in it, an appeal and a title."""
    sizes = [config.items * share // 200 for share in CATEGORY_SHARES]
    n = sum(sizes)
    category = np.repeat(np.arange(len(CATEGORIES)), sizes)
    position = rng.random((n, 2))
    appeal = (rng.permutation(n) + 1.0) ** -config.appeal_zipf
    titles, used = [], {}
    for i in range(n):
        template, a_words, b_words, c_words = CATEGORIES[list(CATEGORIES)[category[i]]]
        lists = [w.split("|") if "|" in w else w.split() for w in (a_words, b_words, c_words)]
        a, b = (lists[k][int(position[i, k] * len(lists[k]))] for k in (0, 1))
        # Each (a, b) cell deals its details in a shuffled order so titles rarely repeat.
        order = used.setdefault((category[i], a, b), list(rng.permutation(len(lists[2]))))
        c = lists[2][order.pop(0)] if order else lists[2][int(rng.integers(len(lists[2])))]
        title = template.format(a=a, b=b, c=c)
        titles.append(title[0].upper() + title[1:])
    # Ids are shuffled across categories so an id says nothing about its category.
    item_ids = [f"i{k:04d}" for k in rng.permutation(n)]
    return Catalog(item_ids, category, position, appeal, titles)


def _visit(rng, config, catalog, members, cats, taste, interest) -> list[int]:
    """The items of one visit: a walk through latent space within the user's interests."""

    def entry(k: int) -> int:
        idx = members[cats[k]]
        near = np.exp(-_torus_sq(catalog.position[idx] - taste[k]) / (2 * config.taste_width**2))
        return int(idx[_pick(rng, catalog.appeal[idx] * near)])

    k = _pick(rng, interest)
    item = entry(k)
    steps = 1  # a bounce; otherwise 2 or more steps, geometric with mean ``mean_steps``
    if rng.random() >= config.bounce:
        steps += int(rng.geometric(1 / (config.mean_steps - 1)))
    items = [item]
    for _ in range(steps - 1):
        r = rng.random()
        if r < config.trending:
            item = _pick(rng, catalog.appeal)
        elif r < config.trending + config.switch and len(cats) > 1:
            k = (k + 1 + int(rng.integers(len(cats) - 1))) % len(cats)
            item = entry(k)
        else:
            idx = members[catalog.category[item]]
            d2 = _torus_sq(catalog.position[idx] - catalog.position[item])
            near = np.exp(-d2 / (2 * config.drift**2))
            w = catalog.appeal[idx] ** config.appeal_in_session * near
            w[idx == item] = 0.0
            item = int(idx[_pick(rng, w)])
        items.append(item)
    return items


def _engagements(rng, items: list[int], t: int) -> tuple[list, int]:
    """Timed events for one visit's items; returns (events, end time). No gap reaches 30 min."""
    events = []
    for step, item in enumerate(items):
        if step:
            pause = rng.lognormal(np.log(35.0), 0.9)
            if rng.random() < 0.05:  # read something elsewhere, came back
                pause = rng.uniform(300, 1500)
            t += int(min(max(pause, 2), 1700))
        events.append((item, t, 0))
        for action, p in ((1, 0.20), (2, 0.08), (3, 0.07)):  # closeup, save, click
            if rng.random() < p:
                t += 2 + int(rng.integers(20))
                events.append((item, t, action))
    return events, t


def simulate(config: SampleConfig, catalog: Catalog, rng: np.random.Generator) -> dict:
    """All users' events as numpy columns: ``user``, ``item``, ``time`` (epoch s), ``action``."""
    zone_offsets = np.array([z for z, _ in ZONES])
    members = [np.flatnonzero(catalog.category == c) for c in range(len(CATEGORIES))]
    rows, user_zone = [], []
    for u in range(config.users):
        n_interests = 1 + _pick(rng, np.array([0.3, 0.45, 0.25]))
        cats = rng.permutation(len(CATEGORIES))[:n_interests]
        interest = rng.dirichlet(np.full(n_interests, 2.0))
        taste = rng.random((n_interests, 2))
        zone = zone_offsets[_pick(rng, np.array([s for _, s in ZONES]))]
        user_zone.append(zone)
        visits = 1 + min(int(rng.lognormal(np.log(config.sessions_per_user), 1.0)), 30)
        local = (rng.integers(config.days, size=visits) * 86400
                 + np.array([_pick(rng, HOURS) for _ in range(visits)]) * 3600
                 + rng.integers(3600, size=visits))
        free = 0
        for t0 in np.sort(config.start + local - zone * 60):
            t0 = max(int(t0), free)
            items = _visit(rng, config, catalog, members, cats, taste, interest)
            events, end = _engagements(rng, items, t0)
            rows += [(u, item, t, a) for item, t, a in events]
            free = end + 7200 + int(rng.integers(3600))  # visits are at least two hours apart
    cols = np.array(rows, dtype=np.int64).T
    return {"user": cols[0], "item": cols[1], "time": cols[2], "action": cols[3],
            "zone": np.array(user_zone)}


def write_events(out: Path, events: dict, catalog: Catalog, config: SampleConfig,
                 rng: np.random.Generator) -> None:
    """Split users across a Parquet, a CSV and a JSON-lines file: one log in three formats."""
    users = np.unique(events["user"])
    shuffled = rng.permutation(users)
    bounds = np.cumsum(np.round(np.array(config.split) * len(users))).astype(int)
    part = np.zeros(users.max() + 1, dtype=int)
    part[shuffled[bounds[0]:bounds[1]]] = 1
    part[shuffled[bounds[1]:]] = 2
    order = np.lexsort((events["user"], events["time"]))  # logs arrive in time order
    u, i, t, a = (events[k][order] for k in ("user", "item", "time", "action"))
    uid = np.array([f"u{k:04d}" for k in range(users.max() + 1)])
    iid = np.array(catalog.item_ids)
    act = np.array(ACTIONS)
    (out / "events").mkdir(parents=True, exist_ok=True)
    sel = part[u] == 0
    table = pa.table({
        "user_id": pa.array(uid[u[sel]]),
        "item_id": pa.array(iid[i[sel]]),
        "timestamp": pa.array(t[sel] * 1000, pa.timestamp("ms", tz="UTC")),
        "action": pa.array(act[a[sel]]),
    })
    pq.write_table(table, out / "events" / "engagements-0.parquet", compression="zstd")
    sel = part[u] == 1
    lines = ["user_id,item_id,timestamp,action"]
    columns = zip(uid[u[sel]], iid[i[sel]], t[sel], act[a[sel]])
    lines += [f"{user},{item},{time},{action}" for user, item, time, action in columns]
    (out / "events" / "engagements-1.csv").write_bytes(("\n".join(lines) + "\n").encode())
    sel = np.flatnonzero(part[u] == 2)
    zones = {z: dt.timezone(dt.timedelta(minutes=int(z))) for z in np.unique(events["zone"])}
    lines = []
    for k in sel:
        when = dt.datetime.fromtimestamp(int(t[k]), zones[events["zone"][u[k]]]).isoformat()
        lines.append(json.dumps({"user_id": str(uid[u[k]]), "item_id": str(iid[i[k]]),
                                 "timestamp": when, "action": str(act[a[k]])}))
    (out / "events" / "engagements-2.jsonl").write_bytes(("\n".join(lines) + "\n").encode())


def catalog_attributes(catalog: Catalog, seed: int) -> dict[str, list[str]]:
    """Attributes beyond the category, each leaning on the item's hidden map position.

    * ``brand``: each category's map is cut into a 3 x 3 grid, one brand per cell
      (``b<category><cell>``); 15% of items carry another brand of their category (noise).
    * ``tags`` (multi-valued, ``a|b``): the two title words that follow the map's two axes,
      plus, for 30% of items, a random third word of the category.
    * ``price`` (numeric): grows with the second map coordinate, with log-normal noise.

    Drawn from their own stream (``seed``), so the events do not change with them.
    """
    rng = np.random.default_rng([seed, 12])
    names = list(CATEGORIES)
    brands, tags, prices = [], [], []
    for i in range(len(catalog.item_ids)):
        c = int(catalog.category[i])
        _, a_words, b_words, c_words = CATEGORIES[names[c]]
        lists = [w.split("|") if "|" in w else w.split() for w in (a_words, b_words, c_words)]
        cell = int(catalog.position[i, 0] * 3) * 3 + int(catalog.position[i, 1] * 3)
        if rng.random() < 0.15:
            cell = int(rng.integers(9))
        brands.append(f"b{c}{cell}")
        words = [lists[k][int(catalog.position[i, k] * len(lists[k]))] for k in (0, 1)]
        if rng.random() < 0.3:
            words.append(lists[2][int(rng.integers(len(lists[2])))])
        tags.append("|".join(dict.fromkeys(w.lower() for w in words)))
        price = np.exp(2.5 + 1.5 * catalog.position[i, 1] + 0.25 * rng.standard_normal())
        prices.append(f"{price:.2f}")
    return {"brand": brands, "tags": tags, "price": prices}


def write_catalog(out: Path, catalog: Catalog, seed: int) -> None:
    """``catalog.csv``: item_id, title, category, brand, tags, price, sorted by id (no field holds
    a comma or a quote)."""
    names = list(CATEGORIES)
    extra = catalog_attributes(catalog, seed)
    rows = sorted(zip(catalog.item_ids, catalog.titles, (names[c] for c in catalog.category),
                      extra["brand"], extra["tags"], extra["price"]))
    assert not any("," in f or '"' in f for row in rows for f in row)
    text = "item_id,title,category,brand,tags,price\n" + "".join(
        ",".join(row) + "\n" for row in rows)
    (out / "catalog.csv").write_bytes(text.encode())


# Bad logs: (line, reason or None for a valid row). CSV times are epoch seconds, JSON-lines times
# ISO-8601 strings. Each bad row has exactly one problem, so its reason is unambiguous.
BAD_CSV = [
    (b"user_id,item_id,timestamp,action", "header"),
    (b"u0001,i0001,1788300000,view", None),
    (b"u0001,i0002,1788300042,closeup", None),
    (b",i0003,1788300100,view", "missing_user"),
    (b"   ,i0003,1788300101,view", "missing_user"),
    (b"u0002,,1788300200,view", "missing_item"),
    (b"u0002,i0004,,view", "missing_time"),
    (b"u0002,i0005,yesterday,view", "bad_time"),
    (b"u0002,i0006,12:30,save", "bad_time"),
    (b"u0003,i0007,5680281600,view", "time_out_of_range"),  # 2150-01-01
    (b"u0003,i0008,-86400,view", "time_out_of_range"),  # 1969-12-31
    (b"u0003,i0009,1788300300", "short_row"),
    (b"u0003", "short_row"),
    (b"u\xff\xfe04,i0010,1788300400,view", "bad_encoding"),
    (b"u0004,i0011,1788300460,click", None),
    (b"u0004,i0012,1788300500,view", None),
]
BAD_JSONL = [
    (b'{"user_id": "u0001", "item_id": "i0001", "timestamp": "2026-09-01T22:00:00+00:00", '
     b'"action": "view"}', None),
    (b'{"user_id": "u0001", "item_id": "i0002", "timestamp": "2026-09-01T17:01:00-05:00", '
     b'"action": "save"}', None),
    (b'{"user_id": "", "item_id": "i0003", "timestamp": "2026-09-01T22:02:00+00:00"}',
     "missing_user"),
    (b'{"item_id": "i0003", "timestamp": "2026-09-01T22:03:00+00:00"}', "missing_user"),
    (b'{"user_id": "u0002", "item_id": null, "timestamp": "2026-09-01T22:04:00+00:00"}',
     "missing_item"),
    (b'{"user_id": "u0002", "item_id": "i0004", "timestamp": ""}', "missing_time"),
    (b'{"user_id": "u0002", "item_id": "i0005"}', "missing_time"),
    (b'{"user_id": "u0002", "item_id": "i0006", "timestamp": "yesterday"}', "bad_time"),
    (b'{"user_id": "u0002", "item_id": "i0006", "timestamp": "2026-13-45T99:00:00+00:00"}',
     "bad_time"),
    (b'{"user_id": "u0003", "item_id": "i0007", "timestamp": "2150-01-01T00:00:00+00:00"}',
     "time_out_of_range"),
    (b'{"user_id": "u0003", "item_id": "i0008", "timestamp": "1969-07-20T20:17:00+00:00"}',
     "time_out_of_range"),
    (b'{"user_id": "u0003", "item_id": ', "bad_json"),
    (b"[1, 2]", "bad_json"),
    (b'"u0003,i0009"', "bad_json"),
    (b'{"user_id": ["u0004"], "item_id": "i0010", "timestamp": "2026-09-01T22:10:00+00:00"}',
     "bad_type"),
    (b'{"user_id": "u0004", "item_id": {"id": 11}, "timestamp": "2026-09-01T22:11:00+00:00"}',
     "bad_type"),
    (b'{"user_id": true, "item_id": "i0012", "timestamp": "2026-09-01T22:12:00+00:00"}',
     "bad_type"),
    (b'{"user_id": "u\xff\xfe05", "item_id": "i0013", "timestamp": "2026-09-01T22:13:00+00:00"}',
     "bad_encoding"),
    (b'{"user_id": "u0005", "item_id": "i0014", "timestamp": "2026-09-02T03:44:00+05:30", '
     b'"action": "click"}', None),
]


def write_bad(out: Path) -> None:
    """The bad logs and ``expected.json``: per file, records read, valid, rejected by reason."""
    (out / "bad").mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, rows in (("bad_events.csv", BAD_CSV), ("bad_events.jsonl", BAD_JSONL)):
        (out / "bad" / name).write_bytes(b"".join(line + b"\n" for line, _ in rows))
        reasons = [r for _, r in rows if r != "header"]
        rejected = Counter(r for r in reasons if r is not None)
        expected[name] = {"read": len(reasons), "valid": reasons.count(None),
                          "rejected": dict(sorted(rejected.items()))}
    text = json.dumps(expected, indent=2, sort_keys=True) + "\n"
    (out / "bad" / "expected.json").write_bytes(text.encode())


def make_samples(out: Path = HERE, config: SampleConfig = SampleConfig()) -> dict:
    """Write every sample file under ``out``; returns the simulated events (numpy columns).

    Each part draws from its own seeded stream, so changing one part leaves the others unchanged.
    """
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(3)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    catalog = make_catalog(streams[0], config)
    events = simulate(config, catalog, streams[1])
    write_events(out, events, catalog, config, streams[2])
    write_catalog(out, catalog, config.seed)
    write_bad(out)
    events["item_id"] = np.array(catalog.item_ids)[events["item"]]
    return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=HERE,
                        help="directory to write into (default: next to this script)")
    args = parser.parse_args(argv)
    events = make_samples(args.output)
    print(f"wrote {len(events['time'])} events, {len(np.unique(events['user']))} users, "
          f"{len(np.unique(events['item']))} items to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
