"""The dialogue: walks the YAML tree, one user turn at a time.

Order of precedence for each turn, safest first:
1. a red flag spotted anywhere in what was said jumps to its node (the most severe one wins);
2. a transition of the current node (`on:`), e.g. yes/no in triage;
3. control intents (repeat, slower, stop, help, more, back, start_over, goodbye), anywhere;
4. a domain intent's route;
5. otherwise the pending question is asked again, or the skill says what it can help with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voiceskill.content import OUTCOMES, Content, Node
from voiceskill.nlu import Understanding

SLOWER_STEP = 0.8
SLOWEST = 0.5


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

    def __post_init__(self) -> None:
        self.node = self.node or self.content.start

    @property
    def awaiting_answer(self) -> bool:
        """A question is pending (triage): the next words answer it, no wake phrase needed."""
        return self.content.nodes[self.node].kind == "question"

    def respond(self, understanding: Understanding) -> Reply:
        intent = understanding.intent
        flagged = self._red_flag_target(understanding.flags)
        current = self.content.nodes[self.node]
        if flagged:
            answer, outcome = self._enter(flagged)
        elif intent in current.on:
            answer, outcome = self._enter(current.on[intent])
        elif intent in CONTROL:
            answer, outcome = CONTROL[intent](self)
        elif intent in self.content.routes:
            answer, outcome = self._enter(self.content.routes[intent])
        elif intent in ("yes", "no"):
            answer, outcome = self._yes_no(intent, current)
        else:
            answer, outcome = self._not_understood(current)
        if answer:
            self.last_answer, self.last_outcome = answer, outcome
        return Reply(
            intent=intent,
            confidence=understanding.confidence,
            node=self.node,
            answer=answer,
            outcome=outcome,
            rate_scale=self.rate_scale,
            end=self.ended,
        )

    # --- moving through the tree ------------------------------------------------------------

    def _red_flag_target(self, flags: tuple[str, ...]) -> str | None:
        targets = [flag.goto for flag in self.content.red_flags if flag.name in flags]
        return max(targets, key=self._severity, default=None)

    def _severity(self, node_id: str) -> int:
        outcome = self.content.nodes[node_id].outcome
        return OUTCOMES.index(outcome) if outcome else -1

    def _enter(self, node_id: str, remember: bool = True) -> tuple[str, str | None]:
        if remember:
            self.history.append(self.node)
        self.node = node_id
        self.more_given = False
        return self._speak(self.content.nodes[node_id])

    def _speak(self, node: Node) -> tuple[str, str | None]:
        """The node's answer, with the once-per-conversation disclaimer before any question."""
        parts = [node.say]
        if node.sources and not self.disclaimer_given:
            parts.append(self.content.disclaimer)
            self.disclaimer_given = True
        if node.ask:
            parts.append(node.ask)
        return " ".join(parts), node.outcome

    def _yes_no(self, intent: str, node: Node) -> tuple[str, str | None]:
        if intent == "yes" and node.more and not self.more_given:
            return self._more()
        return self.content.messages["no_context"], None

    def _not_understood(self, node: Node) -> tuple[str, str | None]:
        """In triage, ask the pending question again; elsewhere, say what we can help with."""
        if node.kind == "question":
            return f"{self.content.messages['reask']} {node.ask}", None
        return self.content.messages["fallback"], None

    # --- control intents --------------------------------------------------------------------

    def _repeat(self) -> tuple[str, str | None]:
        if not self.last_answer:
            return self.content.messages["nothing_to_repeat"], None
        return self.last_answer, self.last_outcome

    def _slower(self) -> tuple[str, str | None]:
        self.rate_scale = max(SLOWEST, round(self.rate_scale * SLOWER_STEP, 3))
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


CONTROL = {
    "repeat": Conversation._repeat,
    "slower": Conversation._slower,
    "stop": Conversation._stop,
    "help": Conversation._help,
    "more": Conversation._more,
    "back": Conversation._back,
    "start_over": Conversation._start_over,
    "goodbye": Conversation._goodbye,
}
