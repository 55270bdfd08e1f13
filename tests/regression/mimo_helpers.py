"""Shared pieces for the MiMo regression tests (issue 3 patches 0003-0005).

Everything here is real SGLang code built without a checkpoint: a tiny byte-level
BPE tokenizer trained on the spot (nothing is downloaded), the real MiMo
processors built with ``object.__new__`` and only the attributes their request
path reads (the way SGLang's own processor tests do it), real WAV / MP4 files
written with numpy, the standard library and PyAV. The only stand-in is
:class:`StandInTokenizerManager`, for the engine behind the tokenizer manager.
"""

from __future__ import annotations

import fractions
import io
import re
import threading
import wave
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np

# Special tokens of the MiMo-V2.5 omni and MiMo-V2-ASR prompt formats.
MIMO_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|video_start|>",
    "<|video_end|>",
    "<|mimo_audio_start|>",
    "<|audio_pad|>",
    "<|mimo_audio_end|>",
    "<|sosp|>",
    "<|empty|>",
    "<|eosp|>",
]
AUDIO_PLACEHOLDER = "<|mimo_audio_start|><|audio_pad|><|mimo_audio_end|>"
ASR_AUDIO_PLACEHOLDER = "<|sosp|><|empty|><|eosp|>"

_CORPUS = [
    "Transcribe the audio. The quick brown fox jumps over the lazy dog.",
    "hello world 00:00 00:01 00:02 00:03 12:34 audio video image text",
    "MiMo speech recognition in one request, then the transcript.",
]

_TOKENIZER = None


def make_tokenizer():
    """A small real fast tokenizer (byte-level BPE) with MiMo's special tokens."""
    global _TOKENIZER
    if _TOKENIZER is not None:
        return _TOKENIZER
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=MIMO_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    _TOKENIZER = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=MIMO_SPECIAL_TOKENS[1:],
    )
    return _TOKENIZER


def token_id(tokenizer, token: str) -> int:
    tid = tokenizer.convert_tokens_to_ids(token)
    assert tid is not None and tid != tokenizer.unk_token_id, token
    return tid


def make_mimo_processor(tokenizer=None):
    """The real ``MiMoV2Processor`` (MiMo-V2.5 omni), as ``__init__`` would set it
    up for a checkpoint whose processor_config names the tokens above."""
    from sglang.srt.multimodal.processors.base_processor import (
        MultimodalSpecialTokens,
    )
    from sglang.srt.multimodal.processors.mimo_v2 import (
        MiMoProcessor,
        MiMoV2Processor,
    )

    tokenizer = tokenizer or make_tokenizer()
    ids = {t: token_id(tokenizer, t) for t in MIMO_SPECIAL_TOKENS}
    unit = 14 * 2  # patch_size * spatial_merge_size
    proc = object.__new__(MiMoV2Processor)
    proc._tokenizer = tokenizer
    proc.skip_tokenizer_init = False
    proc.io_executor = ThreadPoolExecutor(max_workers=2)
    proc.audio_sample_rate = 24000
    proc.IM_START_TOKEN_ID = ids["<|vision_start|>"]
    proc.IM_END_TOKEN_ID = ids["<|vision_end|>"]
    proc.AUDIO_START_TOKEN_ID = ids["<|mimo_audio_start|>"]
    proc.AUDIO_END_TOKEN_ID = ids["<|mimo_audio_end|>"]
    proc.mimo_processor = MiMoProcessor(
        tokenizer=tokenizer,
        patch_size=14,
        image_min_pixels=4 * unit * unit,
        image_max_pixels=64 * unit * unit,
        video_min_pixels=4 * unit * unit,
        video_max_pixels=16 * unit * unit,
        video_total_max_pixels=256 * unit * unit,
        fps=2,
        max_frames=256,
        min_frames=4,
        video_audio_interleave_length=0,
        audio_sampling_rate=24000,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        audio_token_id=ids["<|audio_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        audio_start_token_id=ids["<|mimo_audio_start|>"],
        audio_end_token_id=ids["<|mimo_audio_end|>"],
        video_start_token_id=ids["<|video_start|>"],
        video_end_token_id=ids["<|video_end|>"],
        pad_token_id=tokenizer.pad_token_id,
        rope_type="rope",
        use_video_timestamps=True,
        video_process_num_threads=1,
    )
    proc._processor = proc.mimo_processor
    proc.AUDIO_TOKEN_REGEX = re.compile(
        r"<\|mimo_audio_start\|>(?:<\|audio_pad\|>)+<\|mimo_audio_end\|>"
    )
    proc.mm_tokens = MultimodalSpecialTokens(
        image_token="<|vision_start|><|image_pad|><|vision_end|>",
        image_token_id=ids["<|image_pad|>"],
        image_token_regex=re.compile(
            r"<\|vision_start\|>(?:<\|image_pad\|>)+<\|vision_end\|>"
        ),
        video_token="<|vision_start|><|video_pad|><|vision_end|>",
        video_token_regex=re.compile(
            r"<\|vision_start\|>(?:<\|video_pad\|>)+<\|vision_end\|>"
        ),
        video_token_id=ids["<|video_pad|>"],
        audio_token=AUDIO_PLACEHOLDER,
        audio_token_id=ids["<|audio_pad|>"],
        audio_token_regex=proc.AUDIO_TOKEN_REGEX,
    ).build(proc._processor)
    return proc


def make_asr_processor(tokenizer=None):
    """The real ``MiMoV2ASRProcessor``, set up as its ``__init__`` does."""
    from sglang.srt.multimodal.processors.base_processor import (
        MultimodalSpecialTokens,
    )
    from sglang.srt.multimodal.processors.mimo_audio import MiMoAudioPipeline
    from sglang.srt.multimodal.processors.mimo_v2_asr import MiMoV2ASRProcessor

    tokenizer = tokenizer or make_tokenizer()
    proc = object.__new__(MiMoV2ASRProcessor)
    proc._processor = tokenizer
    proc._tokenizer = tokenizer
    proc.tokenizer = tokenizer
    proc.skip_tokenizer_init = False
    proc.io_executor = ThreadPoolExecutor(max_workers=2)
    proc.audio_pipeline = MiMoAudioPipeline(
        audio_token_id=proc._resolve_special_token_id(proc.AUDIO_PAD_TOKEN),
        audio_start_token_id=proc._resolve_special_token_id(proc.AUDIO_START_TOKEN),
        audio_end_token_id=proc._resolve_special_token_id(proc.AUDIO_END_TOKEN),
        audio_sampling_rate=24000,
    )
    proc.mm_tokens = MultimodalSpecialTokens(
        audio_token=ASR_AUDIO_PLACEHOLDER,
        audio_token_id=proc.audio_token_id,
        audio_token_regex=proc.AUDIO_REGEX,
    ).build(tokenizer)
    return proc


# -- media written by the tests ---------------------------------------------


def speechlike_wave(seconds: float, sr: int = 16000) -> np.ndarray:
    """A deterministic tone with a syllable-rate envelope, float32 in [-1, 1]."""
    t = np.arange(int(seconds * sr)) / sr
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3.0 * t))
    carrier = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 660 * t)
    return (0.3 * envelope * carrier).astype(np.float32)


def wav_bytes(seconds: float, sr: int = 16000) -> bytes:
    """A real 16-bit PCM mono WAV file."""
    pcm = (speechlike_wave(seconds, sr) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def mp4_bytes(video_s: float, audio_s: float, fps: int = 10, size: int = 56):
    """A real MP4 (MPEG-4 video + AAC audio) whose audio track lasts audio_s."""
    import av

    sr = 24000
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        vstream = container.add_stream("mpeg4", rate=fps)
        vstream.width = vstream.height = size
        vstream.pix_fmt = "yuv420p"
        astream = container.add_stream("aac", rate=sr)
        astream.layout = "mono"
        for i in range(int(round(video_s * fps))):
            img = np.full((size, size, 3), (i * 7) % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        pcm = speechlike_wave(audio_s, sr)[None, :]
        step = 1024
        for start in range(0, pcm.shape[1], step):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm[:, start : start + step]),
                format="fltp",
                layout="mono",
            )
            frame.sample_rate = sr
            frame.pts = start
            frame.time_base = fractions.Fraction(1, sr)
            for packet in astream.encode(frame):
                container.mux(packet)
        for packet in astream.encode():
            container.mux(packet)
    return buf.getvalue()


def mp4_stream_durations(data: bytes) -> dict:
    import av

    with av.open(io.BytesIO(data)) as container:
        return {
            s.type: float(s.duration * s.time_base)
            for s in container.streams
            if s.duration is not None
        }


# -- the stand-in engine ----------------------------------------------------

CANNED_TRANSCRIPT = "the quick brown fox jumps over the lazy dog"


def make_stand_in_tokenizer_manager(processor, architectures):
    """A TokenizerManager whose real ``_tokenize_one_request`` runs unchanged.

    It decides what the multimodal processor is handed (``input_text or
    input_ids``) and calls the real MiMo processor. Only what lies past the
    processor is stood in: context-length checks and the scheduler. The stand-in
    ``_create_tokenized_object`` builds the real ``SamplingParams`` from the
    request's dict exactly as the real one does (constructor, ``normalize``,
    ``verify``), and ``generate_request`` answers with a canned transcript.
    """
    from sglang.srt.managers.tokenizer_manager import TokenizerManager
    from sglang.srt.sampling.sampling_params import SamplingParams

    class StandInTokenizerManager(TokenizerManager):
        """Stand-in for the engine side: no scheduler, no model, no GPU."""

        def _validate_one_request(self, obj, input_ids):
            pass  # context-length checks need the model's limits

        def _create_tokenized_object(
            self, obj, input_text, input_ids, input_embeds=None, mm_inputs=None, *a
        ):
            sampling_params = SamplingParams(**dict(obj.sampling_params))
            sampling_params.normalize(self.tokenizer)
            sampling_params.verify(self.model_config.vocab_size)
            return SimpleNamespace(
                input_ids=list(input_ids),
                mm_inputs=mm_inputs,
                sampling_params=sampling_params,
            )

        async def generate_request(self, obj, request=None):
            obj.normalize_batch_and_arguments()
            tokenized = await self._tokenize_one_request(obj)
            with self._lock:
                self.requests.append(tokenized)
            output_ids = self.tokenizer.encode(CANNED_TRANSCRIPT)
            yield {
                "text": CANNED_TRANSCRIPT,
                "output_ids": output_ids,
                "meta_info": {
                    "id": obj.rid,
                    "finish_reason": {"type": "stop"},
                    "prompt_tokens": len(tokenized.input_ids),
                    "completion_tokens": len(output_ids),
                },
            }

        def create_abort_task(self, obj):
            return None

    tokenizer = processor._tokenizer
    tm = object.__new__(StandInTokenizerManager)
    tm.tokenizer = tokenizer
    tm.mm_processor = processor
    tm.max_req_input_len = 1 << 20
    tm.preferred_sampling_params = None
    tm.model_config = SimpleNamespace(
        hf_config=SimpleNamespace(architectures=list(architectures)),
        vocab_size=len(tokenizer),
    )
    tm.server_args = None
    tm.request_logger = SimpleNamespace(log_requests=False, log_requests_level=0)
    tm.rid_to_state = {}  # nothing in flight: the real abort_request is a no-op
    tm.requests = []
    tm._lock = threading.Lock()
    return tm
