"""Tiny random language models over a word-level vocabulary, and the hand computation of log-probs."""

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, BertForMaskedLM, BertModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

WORDS = ["[PAD]", "[UNK]", "[MASK]", "[CLS]", "[SEP]", "a", "movie", "it", "was", "great", "terrible", "film", ".",
         "so", "because", "the", "dog", "cat", "ran", "sat", "who", "answer", "?", ":"]


def word_tokenizer():
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                   mask_token="[MASK]", cls_token="[CLS]", sep_token="[SEP]")


def tiny_llama():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def tiny_bert(kind):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=64)
    return (BertForMaskedLM if kind == "masked" else BertModel)(config).eval()


def option_log_probs(model, tokenizer, prompt: str, option: str) -> torch.Tensor:
    """log p(each option token | prompt and the option tokens before it), one unpadded sequence."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    option_ids = tokenizer(option, add_special_tokens=False)["input_ids"]
    log_probs = F.log_softmax(model(input_ids=torch.tensor([prompt_ids + option_ids])).logits[0], dim=-1)
    return torch.stack([log_probs[len(prompt_ids) + i - 1, token] for i, token in enumerate(option_ids)])
