"""`python run.py [COMMAND] [--flags]`: the `dwd-jax` command run from a clone (see
`dwd_jax/cli.py` for the commands and flags)."""

from dwd_jax import cli

if __name__ == "__main__":
    cli.run()
