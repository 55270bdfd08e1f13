"""What recipes/README.md says about the parser names, checked on the pinned SGLang.

``--reasoning-parser mimo`` is not an alias of ``qwen3`` in v0.5.23 (its thinking default
differs), and ``--tool-call-parser mimo`` is not ``qwen3_coder``. The serving object is
built SGLang-style with ``object.__new__`` and only the attributes the code path reads.
"""

from types import SimpleNamespace

import pytest

reasoning_parser = pytest.importorskip("sglang.srt.parser.reasoning_parser")
from sglang.srt.entrypoints.openai.protocol import ChatCompletionRequest  # noqa: E402
from sglang.srt.entrypoints.openai.serving_chat import OpenAIServingChat  # noqa: E402
from sglang.srt.function_call.function_call_parser import (  # noqa: E402
    FunctionCallParser,
)

DETECTORS = reasoning_parser.ReasoningParser.DetectorMap


def test_mimo_reasoning_parser_is_its_own_qwen3_subclass():
    mimo, qwen3 = DETECTORS["mimo"], DETECTORS["qwen3"]
    assert mimo is not qwen3 and issubclass(mimo, qwen3)
    assert mimo().reasoning_default == "explicit_enable_thinking"
    assert qwen3().reasoning_default == "enable_thinking"
    assert mimo().think_start_token == qwen3().think_start_token == "<think>"


def _thinking(parser_name, kwargs):
    chat = object.__new__(OpenAIServingChat)
    chat.reasoning_parser = parser_name
    # No toggle config inferred from the chat template: the parser's default decides.
    chat.template_manager = SimpleNamespace(
        reasoning_config=None, force_reasoning=False
    )
    chat._reasoning_detector = DETECTORS[parser_name]()
    req = ChatCompletionRequest(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        chat_template_kwargs=kwargs,
    )
    return chat._get_reasoning_from_request(req)


@pytest.mark.parametrize(
    "kwargs,mimo,qwen3",
    [
        (None, False, True),  # the difference: no enable_thinking in the request
        ({"enable_thinking": True}, True, True),
        ({"enable_thinking": False}, False, False),
    ],
)
def test_thinking_default_differs_only_when_the_request_is_silent(kwargs, mimo, qwen3):
    assert _thinking("mimo", kwargs) is mimo
    assert _thinking("qwen3", kwargs) is qwen3


def test_forced_reasoning_swallows_a_plain_answer():
    """What qwen3's default does to a MiMo reply without <think>: empty content."""
    parser = reasoning_parser.ReasoningParser("qwen3", force_reasoning=True)
    assert parser.parse_non_stream("The answer is 5.") == ("The answer is 5.", "")
    parser = reasoning_parser.ReasoningParser("mimo", force_reasoning=False)
    assert parser.parse_non_stream("The answer is 5.") == ("", "The answer is 5.")


def test_mimo_tool_call_parser_is_not_qwen3_coder():
    parsers = FunctionCallParser.ToolCallParserEnum
    assert parsers["mimo"].__name__ == "MiMoDetector"
    assert parsers["qwen3_coder"].__name__ == "Qwen3CoderDetector"
    assert not issubclass(parsers["mimo"], parsers["qwen3_coder"])
    assert not issubclass(parsers["qwen3_coder"], parsers["mimo"])
