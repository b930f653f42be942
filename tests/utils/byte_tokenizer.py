"""A byte-level tokenizer built in code (no files to carry): one token per byte, no merges, and
an end-of-sequence token, for tiny random checkpoints that need a real tokenizer (structured
outputs compile their grammars against one) on machines without the embedded model."""
from pathlib import Path

EOS = "<eos>"


def write_byte_tokenizer(path: str | Path, eos_token_id: int = 2) -> None:
    """Saves the tokenizer into the checkpoint folder `path`: ids below 256 + 3 are taken (the
    bytes from 3 up, the end-of-sequence token at `eos_token_id`)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: 3 + i for i, symbol in enumerate(symbols)}
    vocab.update({"<unk>": 0, "<bos>": 1} if eos_token_id == 2 else {})
    vocab[EOS] = eos_token_id
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, bos_token="<bos>",
                                   unk_token="<unk>")
    fast.save_pretrained(str(path))
