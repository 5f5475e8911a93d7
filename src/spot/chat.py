"""How a problem becomes the model's prompt: decided once, in a `ChatFormat`, for every stage.

    chat = ChatFormat(tokenizer, enable_thinking=False, template="{prompt}\\nPlease reason step by step ...")

Training data (spot.data), sampling (rectify), evaluation and the KL estimate all take the same object, so a
model is scored on the prompt shape it was trained on. The problem template wraps the raw problem (`{prompt}`
is replaced, other braces such as \\boxed{} are kept); a suite may bring its own template (multiple choice
asks for a letter), which then replaces the model's for that suite only. The chat template of the tokenizer is
applied last; `enable_thinking=False` selects Qwen3's non-thinking mode (the paper's setting), None leaves the
template's default, and templates that do not know the variable ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from spot.errors import check


@dataclass(frozen=True)
class ChatFormat:
    tokenizer: PreTrainedTokenizerBase
    enable_thinking: bool | None = None
    template: str = "{prompt}"

    def __post_init__(self) -> None:
        check("{prompt}" in self.template, "model.problem_template", f"must contain {{prompt}}: {self.template!r}")

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def problem_text(self, problem: str, template: str | None = None) -> str:
        """The user turn's content: the problem inside the suite's template, else the model's."""
        return (template or self.template).replace("{prompt}", problem)

    def prompt_text(self, problem: str, template: str | None = None) -> str:
        """The user turn plus the generation prompt, or the bare text for tokenizers without a chat template."""
        content = self.problem_text(problem, template)
        if not self.has_chat_template:
            return content
        extra = {} if self.enable_thinking is None else {"enable_thinking": self.enable_thinking}
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True, **extra
        )

    def prompt_ids(self, problem: str, template: str | None = None) -> list[int]:
        """Token ids of `prompt_text`. A chat template already carries its special tokens, so none are added."""
        text = self.prompt_text(problem, template)
        return self.tokenizer(text, add_special_tokens=not self.has_chat_template)["input_ids"]

    def completion_ids(self, completion: str) -> list[int]:
        """Token ids of a completion, closed with the end-of-sequence token the model must learn to emit."""
        ids = self.tokenizer(completion, add_special_tokens=False)["input_ids"]
        return ids + [self.tokenizer.eos_token_id]
