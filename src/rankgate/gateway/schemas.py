"""Request bodies accepted at the boundary, following the OpenAI chat/completions reference.

Every message shape the official clients send is described here — string, ``null`` (an
assistant turn that only calls tools) or content-part arrays (text, image, audio, file,
refusal), ``developer`` and ``tool`` messages, ``name`` fields, tool calls — so an agent
framework's replayed conversation is accepted, and anything the OpenAI API would reject gets a
400 whose ``param`` points at the field (``messages[2].content[0].text``). Validation is strict
(``"10"`` is not an integer). Unknown top-level fields are allowed and passed through to the
backend (vendor extensions), so rankgate never blocks a feature an upstream supports.

Message and part types are told apart by a callable discriminator whose tags contain ``=``
(``role=user``, ``part=text``): the error-path code drops them, and an unknown role or part
type is reported at ``messages[i].role`` / ``...content[j].type``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

_CFG = ConfigDict(extra="allow", strict=True)
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal")


class _Open(BaseModel):
    model_config = _CFG


# -- content parts --------------------------------------------------------------------------
class TextPart(_Open):
    type: Literal["text"]
    text: str


class ImageURL(_Open):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Open):
    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(_Open):
    data: str
    format: str = Field(min_length=1)


class AudioPart(_Open):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileRef(_Open):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Open):
    type: Literal["file"]
    file: FileRef


class RefusalPart(_Open):
    type: Literal["refusal"]
    refusal: str


def _part_tag(v: Any) -> str | None:
    t = v.get("type") if isinstance(v, dict) else getattr(v, "type", None)
    return f"part={t}" if t in PART_TYPES else None


def _parts_of(allowed: str) -> Discriminator:
    return Discriminator(_part_tag, custom_error_type="invalid_part_type",
                         custom_error_message=f"Content part type must be one of {allowed}")


_UserPart = Annotated[
    Annotated[TextPart, Tag("part=text")] | Annotated[ImagePart, Tag("part=image_url")]
    | Annotated[AudioPart, Tag("part=input_audio")] | Annotated[FilePart, Tag("part=file")],
    _parts_of("'text', 'image_url', 'input_audio', 'file'"),
]
_AssistantPart = Annotated[
    Annotated[TextPart, Tag("part=text")] | Annotated[RefusalPart, Tag("part=refusal")],
    _parts_of("'text', 'refusal'"),
]
_TextOnlyPart = TextPart


# -- tool calls -----------------------------------------------------------------------------
class FunctionCall(_Open):
    name: str = Field(min_length=1)
    arguments: str


class ToolCall(_Open):
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class FunctionDef(_Open):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Open):
    type: Literal["function"]
    function: FunctionDef


class NamedToolChoice(_Open):
    type: Literal["function"]
    function: Annotated[dict[str, str], Field(min_length=1)]


# -- messages -------------------------------------------------------------------------------
class SystemMessage(_Open):
    role: Literal["system"]
    content: str | list[_TextOnlyPart]
    name: str | None = None


class DeveloperMessage(_Open):
    role: Literal["developer"]
    content: str | list[_TextOnlyPart]
    name: str | None = None


class UserMessage(_Open):
    role: Literal["user"]
    content: str | list[_UserPart]
    name: str | None = None


class AssistantMessage(_Open):
    role: Literal["assistant"]
    # null when the turn only calls tools (what every agent framework replays)
    content: str | list[_AssistantPart] | None = None
    refusal: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None
    audio: dict[str, Any] | None = None


class ToolMessage(_Open):
    role: Literal["tool"]
    content: str | list[_TextOnlyPart]
    tool_call_id: str = Field(min_length=1)


class FunctionMessage(_Open):
    role: Literal["function"]
    content: str | None
    name: str = Field(min_length=1)


def _role_tag(v: Any) -> str | None:
    r = v.get("role") if isinstance(v, dict) else getattr(v, "role", None)
    return f"role={r}" if r in ROLES else None


ChatMessage = Annotated[
    Annotated[SystemMessage, Tag("role=system")]
    | Annotated[DeveloperMessage, Tag("role=developer")]
    | Annotated[UserMessage, Tag("role=user")]
    | Annotated[AssistantMessage, Tag("role=assistant")]
    | Annotated[ToolMessage, Tag("role=tool")]
    | Annotated[FunctionMessage, Tag("role=function")],
    Discriminator(_role_tag, custom_error_type="invalid_role",
                  custom_error_message="Role must be one of " + ", ".join(map(repr, ROLES))),
]


# -- request bodies -------------------------------------------------------------------------
class StreamOptions(_Open):
    include_usage: bool | None = None


class _Sampling(_Open):
    model: str = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    n: int | None = Field(default=None, ge=1, le=128)
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    user: str | None = None


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    logprobs: int | None = Field(default=None, ge=0, le=5)
    echo: bool | None = None
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1, le=20)


def model_names() -> set[str]:
    """Names of the models above: pydantic puts them in error locations of unions."""
    return {name for name, v in globals().items()
            if isinstance(v, type) and issubclass(v, BaseModel)}
