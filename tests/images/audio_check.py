"""Run inside an image (``python3 audio_check.py DIR``): MiMo's own audio functions of the
installed, patched sglang on the media files in DIR, written on the host by real encoders
(tests/test_images.py: soundfile for the WAV, PyAV for the MP4s). Prints one JSON object;
the test judges it. Nothing here decodes by itself: every number comes from
``MiMoAudioPipeline.preprocess_audio`` (the decode behind every audio input and a video's
audio track) and ``MiMoProcessor.has_audio_track`` (whether a video gets audio units).
"""

import json
import logging
import platform
import sys
import traceback
from pathlib import Path


def attempt(fn):
    try:
        return {"ok": True, "value": fn()}
    except Exception as e:  # reported, judged by the test
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def main(media):
    logs = []

    class Keep(logging.Handler):
        def emit(self, record):
            logs.append(record.getMessage())

    logging.getLogger().addHandler(Keep())
    out = {"machine": platform.machine()}
    try:
        from sglang.srt.multimodal.processors import mimo_audio
        from sglang.srt.multimodal.processors.mimo_v2 import MiMoProcessor
    except Exception:
        out["import_error"] = traceback.format_exc()
        print(json.dumps(out))
        return
    out["import_logs"] = logs[:]
    out["audio_decoder"] = mimo_audio.AudioDecoder is not None
    out["torchaudio"] = mimo_audio.torchaudio is not None
    try:
        import torchcodec

        out["torchcodec"] = torchcodec.__version__
    except Exception as e:
        out["torchcodec"] = f"unavailable: {type(e).__name__}: {e}"

    # MiMo-V2.5's audio front end as the processor builds it (token ids are not used here).
    pipe = mimo_audio.MiMoAudioPipeline(
        audio_token_id=1, audio_start_token_id=2, audio_end_token_id=3
    )

    def decode(name):
        spec, token_len = pipe.preprocess_audio(Path(media, name).read_bytes())
        return {
            "frames": int(spec.shape[0]),
            "n_mels": int(spec.shape[1]),
            "token_len": int(token_len),
            "expected_token_len": pipe.compute_audio_token_len(int(spec.shape[0])),
            # the loudest mel band over the clip (the tone's band)
            "peak_mel": int(spec.mean(dim=0).argmax()),
            "finite": bool(spec.isfinite().all()),
        }

    def tone_band(hz):
        """The mel band of MiMo's own filterbank that weighs ``hz`` the most."""
        import torchaudio

        kw = pipe.mel_spectrogram_kwargs
        fb = torchaudio.functional.melscale_fbanks(
            n_freqs=kw["n_fft"] // 2 + 1,
            f_min=float(kw["f_min"]),
            f_max=float(kw["f_max"] or kw["sample_rate"] / 2),
            n_mels=kw["n_mels"],
            sample_rate=kw["sample_rate"],
        )
        return int(fb[round(hz * kw["n_fft"] / kw["sample_rate"])].argmax())

    cases = json.loads(Path(media, "cases.json").read_text())
    out["sampling_rate"] = pipe.audio_sampling_rate
    out["hop_length"] = pipe.audio_hop_length
    out["tone_band"] = attempt(lambda: tone_band(cases["tone_hz"]))
    out["decode"] = {
        name: attempt(lambda n=name: decode(n)) for name in cases["decode"]
    }
    out["has_audio_track"] = {
        name: attempt(
            lambda n=name: MiMoProcessor.has_audio_track(Path(media, n).read_bytes())
        )
        for name in cases["track"]
    }
    out["logs"] = logs
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
