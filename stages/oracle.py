"""oracle: a random LSTM plays the data -> data/prepared/ (its samples), models/oracle.keras.

The first stage of the synthetic benchmark (oracle/dvc.yaml); train_lstm and train_gan then
run on its sequences as on any corpus of lines.
"""

from _common import ORACLE, PREPARED, stage_params

from textgen.artifacts import atomic_dir, save_model, save_tokens, save_vocab, write_json
from textgen.errors import exit_on_user_error
from textgen.evaluation import lm_score
from textgen.oracle import (
    build_oracle,
    entropy_rate,
    oracle_vocabulary,
    sample_sequences,
    uniform_sequences,
)
from textgen.seeding import derive_seed, seed_everything
from textgen.tracking import write_results

HEADLINE = ["oracle_entropy_nats", "nll_oracle_real"]  # metrics/; the rest in results/


def main() -> None:
    params = stage_params("oracle")
    p = params.oracle
    seed_everything(p.seed)
    vocab = oracle_vocabulary(p.vocab_size)
    oracle = build_oracle(vocab, p, p.seed)
    sizes = [p.train_sequences, p.val_sequences, p.test_sequences]
    rows = sample_sequences(oracle, vocab, sum(sizes), p.seq_len, p.seed)
    train, val, test = rows[: sizes[0]], rows[sizes[0] : -sizes[2]], rows[-sizes[2] :]
    uniform = uniform_sequences(vocab, p.test_sequences, p.seq_len, derive_seed(p.seed, 2))
    metrics = {
        "oracle_entropy_nats": entropy_rate(oracle, test),
        "nll_oracle_real": lm_score(oracle, test[:, :1], test[:, 1:], batch=1000),
        "nll_oracle_uniform": lm_score(oracle, uniform[:, :1], uniform[:, 1:], batch=1000),
        "train_sequences": len(train),
        "vocab_size": len(vocab),
    }
    with atomic_dir(PREPARED) as tmp:
        for name, split in [("train", train), ("val", val), ("test", test)]:
            save_tokens(tmp / f"{name}.npy", split)
        save_vocab(vocab, tmp / "vocab.json")
        write_json(tmp / "stats.json", {**metrics, "oracle": p.model_dump()})
    save_model(oracle, vocab, ORACLE)
    write_results("oracle", metrics, HEADLINE)
    print(
        f"oracle: {len(train):,} / {len(val):,} / {len(test):,} sequences of {p.seq_len} tokens "
        f"(vocabulary {p.vocab_size}); its entropy "
        f"{metrics['oracle_entropy_nats']:.3f} nats/token, "
        f"NLL oracle of its own test sequences {metrics['nll_oracle_real']:.3f}, "
        f"of uniform tokens {metrics['nll_oracle_uniform']:.3f}"
    )


if __name__ == "__main__":
    exit_on_user_error(main)
