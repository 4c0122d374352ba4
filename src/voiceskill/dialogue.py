"""The dialogue: walks the YAML tree, one user turn at a time.

Order of precedence for each turn, safest first:
1. a red flag said to be happening jumps to its node (the most severe one wins); heard
   unclearly, it is first confirmed ("Did you say you can't breathe?"), and so is a graver
   sign found by meaning beside it (a numb hand said outright, slurred words only meant),
   except in answer to a triage question: an urgent sign's advice is given at once with that
   question after it; beside a sign that does not escalate, anything but "yes" then takes
   the sign that was said to its node;
2. at a triage question: a duration, a sign named in the answer, or yes / no / unknown;
   unknown is never taken as no, and after two unclear answers the careful branch is taken;
   otherwise a sign found by meaning alone is confirmed;
3. control actions (repeat, slower, stop, help, more, back, start over, goodbye);
4. a question about a red flag is answered with what to do if it happens, before any route;
5. a domain intent's route (not to self-care while a triage question waits); an unclear
   question is asked again, never answered;
6. otherwise the skill says what it can help with; after an emergency, the instruction again
   (also for a bare "ok", or a less urgent sign: "he's confused now" after a collapse).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from voiceskill.content import Content
from voiceskill.content.model import Node, RedFlag
from voiceskill.content.schema import OUTCOMES
from voiceskill.nlu import Understanding

SLOWER_RATE = 0.75
UNCLEAR_ANSWERS_BEFORE_MOVING_ON = 2
MOST_SEVERE = OUTCOMES[-1]
URGENT = OUTCOMES.index("urgent")


@dataclass(frozen=True)
class Reply:
    """What the skill answers to one turn."""

    intent: str
    confidence: float
    node: str
    answer: str
    outcome: str | None
    rate_scale: float
    end: bool = False


@dataclass
class Conversation:
    """State of one conversation: where we are, what was said, how fast to speak."""

    content: Content
    node: str = ""
    history: list[str] = field(default_factory=list)
    last_answer: str = ""
    last_outcome: str | None = None
    rate_scale: float = 1.0
    disclaimer_given: bool = False
    more_given: bool = False
    ended: bool = False
    unclear_answers: int = 0
    confirming: RedFlag | None = None
    unless_confirmed: str | None = None
    """The node a pending confirmation falls back to when it is not a "yes": that of the
    less severe sign said outright beside it."""

    def __post_init__(self) -> None:
        self.node = self.node or self.content.start

    @property
    def awaiting_answer(self) -> bool:
        """A yes/no question is pending (a triage question, a confirmation or an offer)."""
        return self.confirming is not None or bool(self.content.nodes[self.node].ask)

    def respond(self, understanding: Understanding) -> Reply:
        answer, outcome = self._turn(understanding)
        if answer:
            self.last_answer, self.last_outcome = answer, outcome
        return Reply(
            intent=understanding.intent,
            confidence=understanding.confidence,
            node=self.node,
            answer=answer,
            outcome=outcome,
            rate_scale=self.rate_scale,
            end=self.ended,
        )

    def _turn(self, heard: Understanding) -> tuple[str, str | None]:
        content = self.content
        current = content.nodes[self.node]
        confirming, self.confirming = self.confirming, None
        unless_confirmed, self.unless_confirmed = self.unless_confirmed, None
        flag = self._most_severe(heard.flags)
        if flag and heard.heard_clearly and self._severity(flag.goto) < self._severity(self.node):
            return self._speak(current)  # "he's confused now" after a collapse: still call
        graver = self._most_severe(heard.possible_flags)
        # Not at a triage question: there the sign said answers it ("yes, my legs are weak").
        if flag and heard.heard_clearly and graver and current.kind != "question" and (
                self._severity(graver.goto) > self._severity(flag.goto)):
            if self._severity(flag.goto) >= URGENT:
                # Sure advice is never held back for a question about a possible graver sign.
                answer, outcome = self._enter(flag.goto)
                return f"{answer} {self._confirm(graver)[0]}", outcome
            self.unless_confirmed = flag.goto
            return self._confirm(graver)
        if flag and heard.heard_clearly:
            return self._enter(flag.goto)
        if flag:
            return self._confirm(flag)
        if confirming and heard.answer == "yes":
            return self._enter(confirming.goto)
        if unless_confirmed:
            return self._enter(unless_confirmed)
        if confirming and heard.answer == "no":
            return content.messages["not_confirmed"], None
        if current.kind == "question" and heard.heard_clearly:
            decided = self._triage_answer(current, heard)
            if decided:  # "I take statins" answers the question; it is not a sign to confirm
                return decided
        flag = self._most_severe(heard.possible_flags)
        if flag:
            return self._confirm(flag)
        if not heard.heard_clearly and heard.guess in content.routes:
            return content.messages["reask"], None
        action = content.actions.get(heard.intent)
        if action:
            return ACTIONS[action](self)
        if heard.asked_flags:
            return self._asked_about(heard.asked_flags), None
        route = content.routes.get(heard.intent)
        if route and self._route_allowed(route, current):
            return self._enter(route)
        if heard.intent in current.on:
            return self._enter(current.on[heard.intent])
        if heard.answer == "yes" and current.more and not self.more_given:
            return self._more()
        if current.outcome == MOST_SEVERE:
            return self._speak(current)  # after an emergency, the instruction stands
        if heard.answer:
            return content.messages["no_context"], None
        if current.kind == "question":
            return self._unclear(current, content.messages["reask"])
        return content.messages["fallback"], None

    def _confirm(self, flag: RedFlag) -> tuple[str, str | None]:
        """Ask "Did you say ...?" about a sign heard unsurely or found by meaning alone."""
        self.confirming = flag
        return flag.confirm, None

    # --- triage -------------------------------------------------------------------------

    def _triage_answer(self, node: Node, heard: Understanding) -> tuple[str, str | None] | None:
        """yes / no from what was said, or None when the turn is not an answer."""
        yes, no = self.answer_targets(node)
        if heard.days is not None and node.yes_from_days is not None:
            return self._enter(yes if heard.days >= node.yes_from_days else no)
        if heard.answer in ("yes", "no"):
            return self._enter(yes if heard.answer == "yes" else no)
        named = heard.concepts | set(heard.flags)
        if named.intersection(node.yes_if):
            return self._enter(yes)
        if heard.answer == "unknown":
            return self._unclear(node, self.content.messages["unsure_reask"])
        return None

    def answer_targets(self, node: Node) -> tuple[str, str]:
        by_answer = {answer: node.on[intent] for intent, answer in self.content.answers.items()
                     if intent in node.on}
        return by_answer["yes"], by_answer["no"]

    def _unclear(self, node: Node, message: str) -> tuple[str, str | None]:
        """Ask again once; then take the careful branch (yes), saying why."""
        self.unclear_answers += 1
        if self.unclear_answers < UNCLEAR_ANSWERS_BEFORE_MOVING_ON:
            return f"{message} {node.ask}", None
        careful, _ = self.answer_targets(node)
        answer, outcome = self._enter(careful)
        return f"{self.content.messages['unsure_move_on']} {answer}", outcome

    # --- moving through the tree ------------------------------------------------------------

    def _most_severe(self, names: tuple[str, ...]) -> RedFlag | None:
        flags = [flag for flag in self.content.red_flags if flag.name in names]
        return max(flags, key=lambda flag: self._severity(flag.goto), default=None)

    def _severity(self, node_id: str) -> int:
        outcome = self.content.nodes[node_id].outcome
        return OUTCOMES.index(outcome) if outcome else -1

    def _route_allowed(self, route: str, current: Node) -> bool:
        """Only a red flag said to be happening escalates to an emergency (handled first):
        an intent alone never does, as "I don't need an ambulance" matches its samples.
        While a triage question waits, a reply is never taken for a self-care question
        ("my arm feels heavy" is an answer, not a request for stretching tips)."""
        outcome = self.content.nodes[route].outcome
        if current.kind == "question" and outcome == OUTCOMES[0]:
            return False
        return outcome != MOST_SEVERE

    def _asked_about(self, names: tuple[str, ...]) -> str:
        """A question about a sign is answered with what to do if it happens, at the
        urgency that sign carries."""
        flag = self._most_severe(names)
        if flag and self._severity(flag.goto) == OUTCOMES.index(MOST_SEVERE):
            return self.content.messages["asked_about_red_flag"]
        return self.content.messages["asked_about_urgent_sign"]

    def _enter(self, node_id: str, remember: bool = True) -> tuple[str, str | None]:
        if remember:
            self.history.append(self.node)
        self.node = node_id
        self.more_given = False
        self.unclear_answers = 0
        return self._speak(self.content.nodes[node_id])

    def _speak(self, node: Node) -> tuple[str, str | None]:
        """The node's answer, with the once-per-conversation disclaimer before any question.

        An emergency instruction stands alone: nothing after it may hedge it."""
        if node.outcome == MOST_SEVERE:
            return node.say, node.outcome
        parts = [node.say]
        if node.sources and not self.disclaimer_given:
            parts.append(self.content.disclaimer)
            self.disclaimer_given = True
        if node.ask:
            parts.append(node.ask)
        return " ".join(parts), node.outcome

    # --- control actions --------------------------------------------------------------------

    def _repeat(self) -> tuple[str, str | None]:
        if not self.last_answer:
            return self.content.messages["nothing_to_repeat"], None
        return self.last_answer, self.last_outcome

    def _slower(self) -> tuple[str, str | None]:
        """One slower rate for the rest of the conversation; asking again does not stack."""
        self.rate_scale = SLOWER_RATE
        if not self.last_answer:
            return self.content.messages["slower"], None
        return f"{self.content.messages['slower']} {self.last_answer}", self.last_outcome

    def _stop(self) -> tuple[str, str | None]:
        return self.content.messages["stopped"], None

    def _help(self) -> tuple[str, str | None]:
        return self.content.messages["help"], None

    def _more(self) -> tuple[str, str | None]:
        node = self.content.nodes[self.node]
        if not node.more or self.more_given:
            return self.content.messages["nothing_more"], None
        self.more_given = True
        return node.more, node.outcome

    def _back(self) -> tuple[str, str | None]:
        if not self.history:
            return self.content.messages["at_start"], None
        return self._enter(self.history.pop(), remember=False)

    def _start_over(self) -> tuple[str, str | None]:
        self.history.clear()
        return self._enter(self.content.start, remember=False)

    def _goodbye(self) -> tuple[str, str | None]:
        self.ended = True
        return self.content.messages["goodbye"], None


ACTIONS: dict[str, Callable[[Conversation], tuple[str, str | None]]] = {
    "repeat": Conversation._repeat,
    "slower": Conversation._slower,
    "stop": Conversation._stop,
    "help": Conversation._help,
    "more": Conversation._more,
    "back": Conversation._back,
    "start_over": Conversation._start_over,
    "goodbye": Conversation._goodbye,
}
