# Stand-in for the checkpoint's own configuration_mimo_v2.py (remote code named by
# config.json "auto_map"; transformers 5.19 has no "mimo_v2" config class). It keeps
# every config.json field as an attribute, which is all SGLang's startup reads.
# Not the released file: see ../SOURCES.md.
from transformers import PretrainedConfig


class MiMoV2Config(PretrainedConfig):
    model_type = "mimo_v2"
