"""The life of one demo case: what happens to a dispute, a hazard, a petition.

A story is a generator of :class:`Step`\\ s, each a command someone sends at some
moment (``report`` first, then actions by their API names). The story keeps its
own time line and its own random draws, so it is the same whatever else happens
in the county. Every step is one the rules allow and one the actor's role may
take (``domain.permissions``): grid workers and handlers work the cases assigned
to them, supervisors dispatch (派单), reclassify at the ceiling, suspend, extend,
supervise and close.

The mixes follow DOMAIN.md: about 85% of minor disputes settled by grid workers
and 11% by the village; a few climb to the township, which above the ceiling
needs a reclassification (重新定性) by the ceiling rank; some cases stall past
their clocks; petitions get replies and return visits (mostly 满意); hazards
are ordered, rectified and re-inspected, some failing the first time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from api.demo import texts
from api.demo.county import County, Grid, Township, Village
from api.demo.names import Names
from domain.actors import Actor
from domain.calendar import WorkingCalendar
from domain.cases import CATEGORIES, Case, Dispute
from domain.kinds import Kind, Severity
from domain.ladder import Profile, Rank

REPORT = "report"

Route = Callable[[str, str, str], "str | None"]
"""(region code, kind, category) → the id of the unit the policy routes such a case to there."""


@dataclass(frozen=True)
class Step:
    """One command of a story: who sends it, when, and what it says."""

    at: datetime  # when it is recorded
    actor: Actor
    action: str  # "report", or an action's API name
    body: dict[str, Any]
    occurred_at: datetime | None = None  # earlier than ``at`` for an offline report


HANDLING_UNITS = {  # the kind of unit that works a case of each kind: (at the township, at the county)
    Kind.DISPUTE: ("justice_office", "county_mediation_centre"),
    Kind.HAZARD: ("safety_office", "emergency_bureau"),
    Kind.PETITION: ("petition_office", "county_petition_bureau"),
}


@dataclass(frozen=True)
class Place:
    """Where a case arises, and the people on the ladder above it."""

    county: County
    township: Township
    village: Village
    grid: Grid

    @property
    def urban(self) -> bool:
        return self.grid.region.profile == Profile.URBAN

    def region(self, rank: int) -> str:
        return {
            Rank.GRID: self.grid.region.code,
            Rank.VILLAGE: self.village.region.code,
            Rank.TOWNSHIP: self.township.region.code,
            Rank.COUNTY: self.county.region.code,
        }[Rank(rank)]

    def handler(self, rank: int, kind: Kind, worker: Actor) -> Actor:
        """Who works a case of this kind at this rank."""
        if rank == Rank.GRID:
            return worker
        if rank == Rank.VILLAGE:
            return self.village.mediator if kind == Kind.DISPUTE else self.village.clerk
        township_unit, county_unit = HANDLING_UNITS[kind]
        if rank == Rank.TOWNSHIP:
            return self.township.handlers[township_unit]
        return self.county.handlers[county_unit]

    def supervisor(self, rank: int) -> Actor:
        """Who dispatches, reclassifies and closes at this rank (on a rural grid:
        the village secretary, who is its 网格长)."""
        if rank == Rank.GRID:
            return self.grid.chief or self.village.secretary
        if rank == Rank.VILLAGE:
            return self.village.secretary
        if rank == Rank.TOWNSHIP:
            return self.township.supervisor
        return self.county.supervisor


class Life:
    """A story's own clock and dice."""

    def __init__(
        self,
        rng: random.Random,
        calendar: WorkingCalendar,
        start: datetime,
        place: Place,
        ceilings: dict[str, int],
        route: Route,
    ) -> None:
        self.rng, self.calendar, self.t = rng, calendar, start
        self.place, self.ceilings, self.route = place, ceilings, route
        self.names = Names(rng)
        grid = place.grid
        self.worker = rng.choice(grid.workers)

    # -- time --------------------------------------------------------------------

    def working(self, low: float, high: float) -> None:
        """Some working hours later (nights, weekends and holidays do not count)."""
        hours = self.rng.uniform(low, high)
        self.t = self.calendar.add_working_hours(self.t, timedelta(hours=hours)) + timedelta(
            seconds=self.rng.randrange(0, 60)
        )

    def minutes(self, low: float, high: float) -> None:
        self.t += timedelta(minutes=self.rng.uniform(low, high))

    def days(self, low: float, high: float) -> None:
        self.t += timedelta(days=self.rng.uniform(low, high))

    # -- dice ----------------------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, weights: Mapping[Any, float]) -> Any:
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]

    def step(self, actor: Actor, action: str, **body: Any) -> Step:
        return Step(self.t, actor, action, body)

    # -- the ladder --------------------------------------------------------------

    def ceiling(self, severity: Severity) -> int:
        return self.ceilings[str(severity)]

    def climb(
        self, kind: Kind, category: str, severity: Severity, rank: int, target: int, handler: Actor
    ) -> Generator[Step, None, tuple[int, Severity, Actor]]:
        """Escalate from ``rank`` to ``target``: disputes one rank at a time, trying
        mediation first; hazards and critical matters straight to the rank that
        handles them. Crossing the ceiling needs a reclassification (重新定性) by
        the supervisor at the ceiling rank first. The unit the escalation is routed
        to signs for it; where none is routed, that rank's supervisor dispatches it.
        Returns the new (rank, severity, handler): as they were if ``target`` is not above."""
        place = self.place
        jump = severity == Severity.CRITICAL or kind != Kind.DISPUTE
        while rank < target:
            if (
                kind == Kind.DISPUTE
                and severity != Severity.CRITICAL
                and (rank > Rank.GRID or self.chance(0.6))
            ):
                self.working(0.5, 5)
                yield self.step(
                    handler,
                    "mediate",
                    outcome="failed",
                    summary="双方分歧较大，本级调解未成，提请上级调解",
                )
            next_rank = target if jump else rank + 1
            if next_rank > self.ceiling(severity):
                self.working(0.3, 3)
                by = place.supervisor(
                    self.ceiling(severity)
                )  # at the ceiling rank (above the case, urban 大事)
                severity = Severity.MAJOR if severity == Severity.MINOR else Severity.CRITICAL
                yield self.step(
                    by,
                    "reclassify",
                    severity=str(severity),
                    reason=self.rng.choice(texts.RECLASSIFY_REASONS),
                )
            self.minutes(5, 60)
            yield self.step(
                handler,
                "escalate",
                to=Rank(next_rank).label,
                reason=self.rng.choice(texts.ESCALATION_REASONS[kind]),
            )
            rank = next_rank
            handler = place.handler(rank, kind, self.worker)
            if self.route(place.region(rank), kind, category) != handler.unit:
                self.working(0.2, 3)
                yield self.step(place.supervisor(rank), "assign", assignee=handler.id)
            yield from self.sign_for(handler, severity)
        return rank, severity, handler

    def dispatch(
        self, by: Actor, handler: Actor, severity: Severity
    ) -> Generator[Step, None, None]:
        """派单: ``by`` assigns the case to ``handler``, who signs for it."""
        yield self.step(by, "assign", assignee=handler.id)
        yield from self.sign_for(handler, severity)

    def sign_for(self, handler: Actor, severity: Severity) -> Generator[Step, None, None]:
        """签收: mostly within the hour; now and then late (a breached sign-for clock)."""
        if self.chance(0.04):
            self.minutes(150, 900)
        elif severity == Severity.CRITICAL:
            self.minutes(3, 25)
        else:
            self.t += timedelta(minutes=self.rng.triangular(3, 100, 12))
        yield self.step(handler, "accept")

    def whistle(
        self, by: Actor, departments: list[str], reason: str, critical: bool = False
    ) -> Generator[Step, None, None]:
        """吹哨报到: the departments named check in (报到), each in its own time: within
        the hour or two for a critical case, within the working day otherwise."""
        yield self.step(by, "whistle", departments=departments, reason=reason)
        handlers = [*self.place.county.handlers.values(), *self.place.township.handlers.values()]
        by_unit = {a.unit: a for a in handlers}
        start = self.t
        if critical:
            arrivals = [start + timedelta(minutes=self.rng.uniform(10, 100)) for _ in departments]
        else:
            arrivals = [
                self.calendar.add_working_hours(start, timedelta(hours=self.rng.uniform(0.3, 6)))
                for _ in departments
            ]
        for at, department in sorted(zip(arrivals, departments, strict=True)):
            self.t = at
            yield self.step(by_unit[department], "check-in", department=department)

    def parties(self, *roles: str) -> list[dict[str, Any]]:
        names = self.names
        people = []
        for role in roles:
            party: dict[str, Any] = {"name": names.party(), "role": role, "phone": names.phone()}
            if self.chance(0.3):
                party["id_number"] = names.id_number(self.place.county.region.code)
            people.append(party)
        return people

    def reporter(self) -> Actor:
        assistants = self.place.grid.assistants
        return self.rng.choice(assistants) if assistants and self.chance(0.3) else self.worker

    def report(self, actor: Actor, offline: bool = False, **body: Any) -> Step:
        occurred = self.t - timedelta(minutes=self.rng.uniform(20, 480)) if offline else None
        return Step(self.t, actor, REPORT, body, occurred_at=occurred)

    def found_on_the_round(
        self,
        kind: Kind,
        category: str,
        severity: Severity,
        title: str,
        description: str,
        parties: list[dict[str, Any]] | None = None,
        **more: Any,
    ) -> Step:
        """A case the grid's worker (or an assistant) found on the round (走访、排查) and
        reports from the grid, now and then offline (sent later). Without ``parties``,
        the one who answers for the place found is its party."""
        reporter, offline = self.reporter(), self.chance(0.12)
        if parties is None:
            parties = [{"name": self.names.party(), "role": "other", "phone": self.names.phone()}]
        return self.report(
            reporter,
            offline=offline,
            kind=str(kind),
            category=category,
            severity=str(severity),
            region=self.place.grid.region.code,
            title=title,
            description=description,
            channel="grid",
            **more,
            parties=parties,
        )


# -- disputes (矛盾纠纷) -----------------------------------------------------------

MIXES = texts.load("mixes.toml")  # weights by category and channel
DISPUTE_CATEGORIES: dict[str, int] = MIXES["dispute"]
URBAN_DISPUTE_CATEGORIES: dict[str, int] = MIXES["urban_dispute"]


def dispute(life: Life) -> Generator[Step, None, None]:
    place, rng = life.place, life.rng
    severity = Severity(life.pick({"minor": 88, "major": 10, "critical": 2}))
    category = life.pick(URBAN_DISPUTE_CATEGORIES if place.urban else DISPUTE_CATEGORIES)
    if severity == Severity.CRITICAL:
        category = life.pick({"wages": 60, "land": 25, "damages": 15})
    parties = life.parties("applicant", "respondent")
    templates = (
        texts.URBAN_NEIGHBOUR_TITLES
        if place.urban and category == "neighbours"
        else texts.DISPUTE_TITLES[category]
    )
    title = texts.title(rng, templates, a=parties[0]["name"], b=parties[1]["name"])

    if severity == Severity.MINOR:
        # planned; the timer's 四级七天 escalations move a few more from the grid to the village,
        # so about 85% end at the grid and 11% at the village (高台)
        target = life.pick(
            {0: 88, 1: 8.5, 2: 2, "stall": 1.5} if not place.urban else {0: 89, 1: 8, "stall": 3}
        )
    elif severity == Severity.MAJOR:
        target = life.pick({1: 55, 2: 40, "stall": 5})
    else:
        target = Rank.COUNTY
    stall = target == "stall"
    if stall:
        target = life.pick({0: 1, 1: 2}) if severity == Severity.MINOR else Rank.VILLAGE

    found = f"{title}。{place.village.region.name}网格员走访发现并上报。"
    yield life.found_on_the_round(Kind.DISPUTE, category, severity, title, found, parties=parties)
    life.working(0.1, 2)
    yield from life.dispatch(place.supervisor(Rank.GRID), life.worker, severity)
    rank, severity, handler = yield from life.climb(
        Kind.DISPUTE, category, severity, int(Rank.GRID), target, life.worker
    )
    supervisor = place.supervisor(rank)

    if severity == Severity.CRITICAL:
        departments = [
            place.county.department("rsj").id
            if category == "wages"
            else place.county.department("zrj").id,
            place.township.units["police_station"].id,
            place.township.units["justice_office"].id,
        ]
        life.minutes(10, 90)
        yield from life.whistle(
            supervisor, departments, "重大矛盾纠纷，县级牵头，相关部门报到联合化解", critical=True
        )
    elif place.urban and rank >= Rank.VILLAGE and life.chance(0.3):
        life.working(0.5, 4)
        yield from life.whistle(
            place.supervisor(Rank.VILLAGE),
            [place.county.department("cgj").id, place.township.units["police_station"].id],
            "社区吹哨、部门报到：联合现场调处",
        )

    if rank >= Rank.VILLAGE and life.chance(0.04):
        life.working(1, 8)
        yield life.step(supervisor, "suspend", reason="当事人外出务工，经批准暂缓调解")
        life.days(5, 20)
        yield life.step(supervisor, "resume")

    if stall:  # nobody moves it: the mediation clock runs out and the supervisor chases it
        life.days(30.5, 33)
        yield life.step(
            place.supervisor(min(rank + 1, Rank.COUNTY)),
            "supervise",
            note="调解超期未结，请抓紧办理（督办）",
            clock="mediation",
        )
        life.days(5, 40)

    if life.chance(0.12):
        life.working(1, 10)
        yield life.step(handler, "mediate", outcome="adjourned", summary="当事人未到齐，择期再调")
    if rank == Rank.GRID:
        life.working(0.3, 4)
    else:
        life.working(1, 10)
    agreed = life.chance(0.93)
    confirmed = (
        agreed and rank >= Rank.VILLAGE and life.chance(0.12)
    )  # 司法确认: a written agreement
    if confirmed:
        agreement = rng.choice(texts.AGREEMENTS)
        yield life.step(
            handler,
            "mediate",
            outcome="agreed",
            summary=agreement,
            agreement=agreement,
            form="written",
        )
        life.minutes(10, 60)
        yield life.step(handler, "sign-agreement")  # the parties sign the 调解协议书
        life.minutes(5, 30)
        yield life.step(handler, "seal-agreement")  # the committee seals it: effective
    elif agreed:
        agreement = rng.choice(texts.AGREEMENTS)
        yield life.step(
            handler, "mediate", outcome="agreed", summary=agreement, agreement=agreement
        )
    elif life.chance(0.3):  # 当事人拒绝调解: recorded as such, not as a session
        yield life.step(
            handler,
            "refuse-mediation",
            party=life.pick({"applicant": 30, "respondent": 70}),
            reason="当事人明确表示不同意调解，要求通过诉讼解决",
        )
    else:
        yield life.step(
            handler, "mediate", outcome="failed", summary=rng.choice(texts.FAILED_SUMMARIES)
        )
    life.minutes(5, 40)
    yield life.step(
        handler,
        "resolve",  # after a failed or refused mediation: ends referred
        resolution="调解成功，矛盾化解" if agreed else "调解终结，已告知当事人其他救济途径",
    )
    if confirmed:
        life.days(1, 10)  # within 30 days of the effective agreement
        yield life.step(handler, "court-confirmation", note="双方共同向人民法院申请司法确认")
    life.working(0.5, 14)
    yield life.step(supervisor, "close")


# -- hazards (安全隐患) ---------------------------------------------------------------

HAZARD_CATEGORIES: dict[str, int] = MIXES["hazard"]


def hazard(life: Life) -> Generator[Step, None, None]:
    place, rng = life.place, life.rng
    severity = Severity(life.pick({"minor": 80, "major": 17, "critical": 3}))
    category = life.pick(HAZARD_CATEGORIES)
    level = (
        "major"
        if severity == Severity.CRITICAL or (severity == Severity.MAJOR and life.chance(0.6))
        else "general"
    )
    spot = place.grid.region.name if place.urban else place.village.region.name
    title = texts.title(rng, texts.HAZARD_TITLES[category], p=spot)
    if severity == Severity.MINOR:
        target = life.pick({0: 88, 1: 12}) if place.urban else life.pick({0: 45, 1: 55})
    elif severity == Severity.MAJOR:
        target = Rank.VILLAGE if level == "general" and life.chance(0.5) else Rank.TOWNSHIP
    else:
        target = Rank.COUNTY

    found = f"{title}。网格员隐患排查中发现。"
    yield life.found_on_the_round(Kind.HAZARD, category, severity, title, found, hazard_level=level)
    life.working(0.1, 2)
    if target == Rank.VILLAGE and (not place.urban or severity != Severity.MINOR):
        # 派单 to the 村委会: no escalation needed
        handler, rank = place.village.clerk, int(Rank.VILLAGE)
        yield from life.dispatch(place.supervisor(Rank.GRID), handler, severity)
    else:
        yield from life.dispatch(place.supervisor(Rank.GRID), life.worker, severity)
        rank, severity, handler = yield from life.climb(
            Kind.HAZARD, category, severity, int(Rank.GRID), target, life.worker
        )
    if severity == Severity.CRITICAL:
        level = "major"  # reclassified critical: a 重大隐患, with its rectification plan
    supervisor = place.supervisor(rank)

    if severity == Severity.CRITICAL:
        life.minutes(10, 60)
        yield from life.whistle(
            supervisor,
            [
                place.county.department("xfdd").id,
                place.township.units["safety_office"].id,
                place.county.department("zjj").id,
            ],
            "重大隐患，应急、消防、乡镇安监联合处置",
            critical=True,
        )

    # 限时整改: a notice with a deadline
    life.working(0.2, 4 if rank == Rank.GRID else 8)
    if severity == Severity.CRITICAL:
        deadline = life.t + timedelta(hours=rng.uniform(12, 22))
    elif level == "major":
        deadline = life.t + timedelta(days=rng.uniform(7, 20))
    elif rank == Rank.GRID:
        deadline = life.t + timedelta(hours=rng.uniform(4, 30))
    else:
        deadline = life.t + timedelta(days=rng.uniform(1, 4))
    plan = None
    if level == "major":
        plan = {
            "funds": f"{rng.randint(2, 40)}万元",
            "people": f"{rng.randint(3, 12)}人",
            "interim_measures": "设置警戒区，专人值守，停止使用",
        }
    yield life.step(
        handler,
        "order-rectification",
        deadline=deadline.isoformat(),
        measures=rng.choice(texts.MEASURES),
        **({"plan": plan} if plan else {}),
    )

    window = (deadline - life.t).total_seconds()
    fate = life.pick({"on_time": 86, "late": 10, "stalled": 4})
    if level == "major" and fate == "on_time" and life.chance(0.1):
        life.t += timedelta(seconds=window * rng.uniform(0.3, 0.6))
        yield life.step(
            supervisor,
            "extend",
            clock="rectification",
            days=rng.randint(5, 10),
            reason="整改工程量大，经审批延期",
        )
        life.t = deadline + timedelta(days=rng.uniform(1, 4))
    elif fate == "on_time":
        life.t += timedelta(seconds=window * rng.uniform(0.3, 0.95))
    else:  # past the deadline: a 督办函
        life.t = deadline + timedelta(hours=rng.uniform(6, 30))
        yield life.step(
            place.supervisor(min(rank + 1, Rank.COUNTY)),
            "supervise",
            note="隐患逾期未整改，下发督办函",
            clock="rectification",
        )
        life.days(1, 6) if fate == "late" else life.days(40, 60)
    yield life.step(handler, "rectify", note="责任单位已按要求完成整改")

    life.working(2, 16)
    if life.chance(0.15):
        yield life.step(handler, "reinspect", passed=False, note="复查未通过，整改不到位，重新整改")
        life.working(4, 24)
        yield life.step(handler, "rectify", note="已按复查意见再次整改")
        life.working(2, 14)
    yield life.step(handler, "reinspect", passed=True, note="复查合格")
    life.minutes(5, 60)
    yield life.step(handler, "resolve", resolution="隐患已整改到位，复查合格，予以销号")
    life.working(0.5, 14)
    yield life.step(supervisor, "close")


# -- petitions (诉求) -------------------------------------------------------------------

PETITION_CATEGORIES: dict[str, int] = MIXES["petition"]
CHANNELS: dict[str, int] = MIXES["petition_channels"]
FROM_THE_HOTLINE = ("hotline_12345", "online", "letters_visits")


def petition(life: Life) -> Generator[Step, None, None]:
    place, rng, county = life.place, life.rng, life.place.county
    severity = Severity(life.pick({"minor": 82, "major": 15, "critical": 3}))
    category = life.pick(PETITION_CATEGORIES)
    if severity == Severity.CRITICAL:
        category = life.pick({"utilities": 70, "public_order": 30})
    channel = life.pick(CHANNELS)
    if severity == Severity.MINOR:
        target = (
            Rank.GRID
            if place.urban
            else (life.pick({0: 40, 1: 60}) if channel == "grid" else Rank.VILLAGE)
        )
    elif severity == Severity.MAJOR:
        # urban: 大事不出社区 under the default policy; the pick is kept so the rest of the run stays as it was
        target = (
            min(life.pick({1: 55, 2: 45}), life.ceiling(severity)) if place.urban else Rank.TOWNSHIP
        )
    else:
        target = Rank.TOWNSHIP
    target = int(target)
    petitioner = life.parties("petitioner")
    spot = place.grid.region.name if place.urban else place.village.region.name
    title = texts.title(rng, texts.PETITION_TITLES[category], a=petitioner[0]["name"], p=spot)

    hotline = channel in FROM_THE_HOTLINE
    if hotline:
        reporter, at = county.dispatcher, target
    elif channel == "grid":
        reporter, at = life.reporter(), Rank.GRID
    else:  # walk-in at the village committee or the township office
        reporter = place.handler(max(target, Rank.VILLAGE), Kind.PETITION, life.worker)
        at = max(target, Rank.VILLAGE) if target >= Rank.VILLAGE else Rank.GRID
    yield life.report(
        reporter,
        offline=channel == "grid" and life.chance(0.1),
        kind="petition",
        category=category,
        severity=str(severity),
        region=place.region(at),
        title=title,
        description=f"{title}，诉求人希望尽快解决。",
        channel=channel,
        parties=petitioner,
    )

    handler = place.handler(target, Kind.PETITION, life.worker)
    dispatcher = county.dispatcher if hotline else place.supervisor(target)
    if hotline:
        life.minutes(5, 90)
    else:
        life.working(0.1, 2)
    neighbours = [v for v in place.township.villages if v is not place.village]
    if hotline and target == Rank.VILLAGE and not place.urban and neighbours and life.chance(0.05):
        wrong = rng.choice(neighbours).clerk  # 派错属地: the wrong village sends it back
        yield life.step(dispatcher, "assign", assignee=wrong.id)
        life.working(0.5, 6)
        yield life.step(wrong, "send-back", reason="经核实不属于本村辖区，申请退单")
        life.minutes(10, 120)
    yield from life.dispatch(dispatcher, handler, severity)

    if severity == Severity.CRITICAL or (
        place.urban and target >= Rank.VILLAGE and life.chance(0.35)
    ):
        departments = [
            county.department("gdgs" if category == "utilities" else "cgj").id,
            place.township.units["police_station"].id,
        ]
        life.minutes(10, 120)
        yield from life.whistle(
            place.supervisor(target),
            departments,
            "吹哨报到：相关部门到场联合处置",
            critical=severity == Severity.CRITICAL,
        )

    redo = 0
    while True:
        if severity == Severity.CRITICAL:
            life.minutes(30, 110)
        elif severity == Severity.MAJOR:
            if (
                life.chance(0.25) and category != "utilities"
            ):  # 延期 before the 15-day reply falls due
                life.days(7, 9)
                if life.chance(0.5):  # asked for by the handler, approved by the supervisor
                    yield life.step(
                        handler,
                        "request-extension",
                        clock="reply",
                        days=10,
                        reason="情况复杂，需多部门会商，申请延期",
                    )
                    life.working(0.5, 4)
                    yield life.step(
                        place.supervisor(target),
                        "approve-extension",
                        clock="reply",
                        note="同意延期",
                    )
                else:  # granted directly by the supervisor
                    yield life.step(
                        place.supervisor(target),
                        "extend",
                        clock="reply",
                        days=10,
                        reason="情况复杂，需多部门会商，延期办理",
                    )
                life.days(3, 12)
            else:
                life.working(10, 70)
        elif life.chance(0.05):
            life.working(40, 80)  # late: past the 5-working-day reply clock
        elif life.chance(0.01):
            life.days(30, 60)  # forgotten: still open at the end of the season
        else:
            life.working(1, 26)
        yield life.step(handler, "reply", text=rng.choice(texts.REPLIES))
        life.minutes(5, 60)
        yield life.step(handler, "resolve", resolution="已办结并答复诉求人")

        visitor = county.dispatcher if hotline else place.supervisor(target)
        life.working(1, 5)  # 回访: the next working morning, mostly within the day the clock allows
        if redo:
            satisfaction = life.pick({"satisfied": 65, "basically_satisfied": 35})
        else:
            satisfaction = life.pick(
                {"satisfied": 82, "basically_satisfied": 13, "dissatisfied": 5}
            )
        yield life.step(
            visitor,
            "return-visit",
            satisfaction=satisfaction,
            note={
                "satisfied": "诉求人表示满意",
                "basically_satisfied": "诉求人表示基本满意",
                "dissatisfied": "诉求人不满意，发回重办",
            }[satisfaction],
        )
        if satisfaction != "dissatisfied":
            break
        redo += 1
    life.minutes(10, 120)
    yield life.step(visitor, "close")


def take_over(life: Life, case: Case) -> Generator[Step, None, None]:
    """The timer escalated the case (四级七天: its rank's clock ran out). The new
    rank's supervisor dispatches it and the handler there settles it. Only
    disputes escalate on a breach under the default policy; any other kind is
    left where the timer put it."""
    if case.kind != Kind.DISPUTE:
        return
    place = life.place
    rank, severity = case.rank, Severity(case.severity)
    handler, supervisor = place.handler(rank, Kind.DISPUTE, life.worker), place.supervisor(rank)
    life.working(0.2, 3)
    yield from life.dispatch(supervisor, handler, severity)
    if cast(Dispute, case).agreement is None:
        life.working(1, 8)
        agreement = life.rng.choice(texts.AGREEMENTS)
        yield life.step(
            handler, "mediate", outcome="agreed", summary=agreement, agreement=agreement
        )
    life.minutes(5, 40)
    yield life.step(handler, "resolve", resolution="上级调解组织接手后调解成功，矛盾化解")
    life.working(0.5, 14)
    yield life.step(supervisor, "close")


STORIES = {Kind.DISPUTE: dispute, Kind.HAZARD: hazard, Kind.PETITION: petition}


def check_categories() -> None:
    """The demo's category mixes use only the categories the domain knows."""
    for kind, mixes in (
        (Kind.DISPUTE, (DISPUTE_CATEGORIES, URBAN_DISPUTE_CATEGORIES)),
        (Kind.HAZARD, (HAZARD_CATEGORIES,)),
        (Kind.PETITION, (PETITION_CATEGORIES,)),
    ):
        for mix in mixes:
            unknown = set(mix) - set(CATEGORIES[kind])
            if unknown:
                raise AssertionError(f"unknown {kind} categories in the demo: {sorted(unknown)}")
