"""Broken Generators: the real transformers adapter with one bug each. BROKEN maps each to
the one property that must fail (or, for wrong weights, the two parity properties that both
compare with the reference)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from engines.base import SamplingParams, check_prompts
from engines.transformers import TransformersGenerator


class StaleRepeat(TransformersGenerator):
    """Caches the last greedy call and answers a repeat of it from a stale, shifted copy."""

    def load(self, *args, **kwargs) -> None:
        super().load(*args, **kwargs)
        self._last = None

    def generate(self, prompts, params):
        out = super().generate(prompts, params)
        key = (tuple(prompts), params)
        if params.greedy and not params.stop and self._last == key:
            vocab = self._model.config.vocab_size
            out = [type(c)(c.text, (*c.token_ids[:-1], (c.token_ids[-1] + 1) % vocab),
                           c.prompt_token_ids, c.finish_reason) if c.token_ids else c for c in out]
        self._last = key
        return out


def right_padded(tok, prompt_ids) -> dict:
    """The classic bug: pad tokens after the prompt, so generation continues from padding."""
    width = max(len(ids) for ids in prompt_ids)
    ids = [row + [tok.pad_token_id] * (width - len(row)) for row in prompt_ids]
    mask = [[1] * len(row) + [0] * (width - len(row)) for row in prompt_ids]
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}


class RightPadding(TransformersGenerator):
    """Pads batches on the right in generate() (the forward pass is fine)."""

    def _generate(self, prompt_ids, params, streamer=None):
        self._generating = True
        try:
            return super()._generate(prompt_ids, params, streamer)
        finally:
            self._generating = False

    def _batch(self, prompt_ids):
        if getattr(self, "_generating", False):
            return right_padded(self._tok, prompt_ids)
        return super()._batch(prompt_ids)


class UnmaskedForward(TransformersGenerator):
    """The low-level forward pass ignores the attention mask and position ids."""

    def next_token_logits(self, prompts):
        check_prompts(prompts)
        batch = self._batch([self.tokenize(p) for p in prompts])
        with torch.inference_mode():
            out = self._model(input_ids=batch["input_ids"])
        return out.logits[:, -1, :].float().numpy().copy()


class SetCache(TransformersGenerator):
    """Caches greedy results by the set of prompts and returns them in the first-seen order."""

    def load(self, *args, **kwargs) -> None:
        super().load(*args, **kwargs)
        self._cache = {}

    def generate(self, prompts, params):
        if not params.greedy:
            return super().generate(prompts, params)
        key = (frozenset(prompts), len(prompts), params)
        if key not in self._cache:
            self._cache[key] = super().generate(prompts, params)
        return self._cache[key]


class DropsFirstDelta(TransformersGenerator):
    """stream() loses its first text delta."""

    def stream(self, prompt, params):
        deltas = super().stream(prompt, params)
        next(deltas, None)
        yield from deltas


class IgnoresMinNewTokens(TransformersGenerator):
    """min_new_tokens is silently dropped."""

    def _kwargs(self, params):
        kw = super()._kwargs(params)
        if not params.ignore_eos:
            kw.pop("min_new_tokens", None)
        return kw


class KeepsStopToken(TransformersGenerator):
    """The stop token id stays at the end of the returned ids."""

    def _finish(self, generated, params):
        cut, reason = super()._finish(generated, params)
        if reason == "eos" and params.stop_token_ids and len(cut) < len(generated):
            return [*cut, generated[len(cut)]], reason
        return cut, reason


class IgnoresStopStrings(TransformersGenerator):
    """Stop strings are never applied."""

    def generate(self, prompts, params):
        return super().generate(prompts, SamplingParams.from_dict(
            {**params.__dict__, "stop": ()}))


class DoubleBos(TransformersGenerator):
    """tokenize() prepends a BOS of its own on top of the tokenizer's."""

    def tokenize(self, text):
        return [self._tok.bos_token_id, *super().tokenize(text)]


class ChatDoubleBos(TransformersGenerator):
    """chat() applies the template and then lets the tokenizer add special tokens again."""

    def chat(self, messages, params):
        turns = [{"role": m.role, "content": m.content} for m in messages]
        text = self._tok.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
        return self._generate([self._tok(text).input_ids], params)[0]


class IgnoresSeed(TransformersGenerator):
    """The seed is never applied: sampling follows whatever state the RNG is in."""

    def _seed(self, params):
        return None


class DropsLastPromptToken(TransformersGenerator):
    """generate_from_ids() loses the last prompt token."""

    def generate_from_ids(self, prompt_ids, params):
        return super().generate_from_ids([list(ids)[:-1] for ids in prompt_ids], params)


class StaleForwardOffset(TransformersGenerator):
    """Compiled-state bug: the forward pass keeps the position offset of the last generate()."""

    def load(self, *args, **kwargs) -> None:
        super().load(*args, **kwargs)
        self._offset = 0

    def generate(self, prompts, params):
        self._offset = params.max_new_tokens
        return super().generate(prompts, params)

    def next_token_logits(self, prompts):
        check_prompts(prompts)
        batch = self._batch([self.tokenize(p) for p in prompts])
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        positions[:, -1] += self._offset  # only the newest position: RoPE would hide a shift
        with torch.inference_mode():
            out = self._model(**batch, position_ids=positions)
        return out.logits[:, -1, :].float().numpy().copy()


class SharedLogitsBuffer(TransformersGenerator):
    """next_token_logits() returns a view of a buffer that the next call overwrites."""

    def next_token_logits(self, prompts):
        fresh = super().next_token_logits(prompts)
        if getattr(self, "_buffer", None) is None or self._buffer.shape[1] != fresh.shape[1]:
            self._buffer = np.empty((16, fresh.shape[1]), np.float32)
        self._buffer[: len(fresh)] = fresh
        return self._buffer[: len(fresh)]


class ReloadFlipsPadding(TransformersGenerator):
    """A second load() leaves batches padded on the right."""

    def load(self, *args, **kwargs) -> None:
        self._loads = getattr(self, "_loads", 0) + 1
        super().load(*args, **kwargs)

    def _batch(self, prompt_ids):
        if self._loads < 2:
            return super()._batch(prompt_ids)
        return right_padded(self._tok, prompt_ids)


class NoInputChecks(TransformersGenerator):
    """Bad prompts reach the tokenizer and the model unchecked."""

    def generate(self, prompts, params):
        return self._generate([self._tok(p).input_ids for p in prompts], params)


class LostLayerWeights(TransformersGenerator):
    """A conversion that lost one layer's MLP output weights: self-consistent, but not the model."""

    def _load_model(self, model_dir, device, dtype):
        model = super()._load_model(model_dir, device, dtype)
        with torch.no_grad():
            model.model.layers[-1].mlp.down_proj.weight.zero_()
        return model


class StreamsAnyway(TransformersGenerator):
    """Declares no streaming, yet stream() answers instead of raising UnsupportedCapabilityError."""

    capabilities = dataclasses.replace(TransformersGenerator.capabilities, streaming=False)

    def stream(self, prompt, params):  # past the base class's capability check
        yield from self._stream(self.tokenize(prompt), params)


class ShiftedLogprobs(TransformersGenerator):
    """Log-probabilities off by one step: each token gets the distribution of the step before."""

    def _generate(self, prompt_ids, params, streamer=None):
        out = super()._generate(prompt_ids, params, streamer)
        return [dataclasses.replace(c, logprobs=(c.logprobs[:1] + c.logprobs[:-1]))
                if c.logprobs else c for c in out]


class ScaledLogits(TransformersGenerator):
    """Logits scaled by 0.5, as a dequantization scale off by a factor of 2 would: the argmax,
    and so every greedy id, stays; only the distributions' sharpness changes."""

    def _logits(self, prompt_ids):
        return super()._logits(prompt_ids) * 0.5


class IgnoresAdapter(TransformersGenerator):
    """Accepts a LoRA adapter and never applies it."""

    def _set_adapter(self, adapter_dir):
        pass


class DropsZeroWidthJoiner(TransformersGenerator):
    """Normalizes text before tokenizing by deleting zero-width joiners: emoji sequences
    (a family, a heart on fire) come out as their parts."""

    def tokenize(self, text):
        return super().tokenize(text.replace("\u200d", ""))


class StripsSpecialStrings(TransformersGenerator):
    """"Sanitizes" user text by deleting special-token strings: neither parsed nor kept."""

    def tokenize(self, text):
        for special in ("<|im_end|>", "<|im_start|>", "<|endoftext|>"):
            text = text.replace(special, "")
        return super().tokenize(text)


class DropsSystemTurn(TransformersGenerator):
    """chat() leaves the system message out (as an API that keeps it in a field of its own
    and forgets to pass it on would)."""

    def chat(self, messages, params):
        return super().chat([m for m in messages if m.role != "system"], params)


class ChatIgnoresEos(TransformersGenerator):
    """chat() runs to max_new_tokens whatever the model says (its EOS suppressed)."""

    def chat(self, messages, params):
        return super().chat(messages, dataclasses.replace(params, ignore_eos=True))


class DecodesEachTokenAlone(TransformersGenerator):
    """stream() decodes each token on its own: a character split across tokens comes out as
    replacement characters."""

    def _stream(self, prompt_ids, params):
        from engines.base import StreamDelta

        for token in self._generate([prompt_ids], params)[0].token_ids:
            yield StreamDelta(self._tok.decode([token], skip_special_tokens=True), (token,))


BROKEN = {
    StaleRepeat: "greedy_determinism",
    RightPadding: "batch_invariance",
    UnmaskedForward: "padding_invariance",
    SetCache: "order_invariance",
    DropsFirstDelta: ("streaming_equals_generate", "streaming_utf8"),
    IgnoresMinNewTokens: "length_contract",
    KeepsStopToken: "eos_stop",
    IgnoresStopStrings: "stop_strings",
    DoubleBos: ("tokenization_parity", "tokenizer_real_text",  # every tokenize() comparison
                "special_tokens_in_text"),
    ChatDoubleBos: "chat_template",
    IgnoresSeed: "seeded_sampling",
    DropsLastPromptToken: ("continuation", "lora_adapter"),  # the adapter's ids are off too
    StaleForwardOffset: "call_order_independence",
    SharedLogitsBuffer: "idempotence",
    ReloadFlipsPadding: "lifecycle",
    NoInputChecks: "typed_errors",
    LostLayerWeights: ("greedy_parity", "logprobs", "quantization_quality",  # wrong weights
                       "lora_adapter", "greedy_margins", "eos_and_stops", "text_quality"),
    StreamsAnyway: "unsupported_capabilities",
    ShiftedLogprobs: "logprobs",
    ScaledLogits: ("quantization_quality", "lora_adapter"),  # held to the merged reference too
    IgnoresAdapter: "lora_adapter",
    DropsZeroWidthJoiner: "tokenizer_real_text",
    StripsSpecialStrings: "special_tokens_in_text",
    DropsSystemTurn: ("chat_template", "chat_template_turns"),  # the random fixtures' too
    ChatIgnoresEos: "eos_and_stops",
    DecodesEachTokenAlone: ("streaming_equals_generate", "streaming_utf8"),  # random bytes too
}
