"""``python -m clinical_nlp``: the same command line as ``clinical-nlp``."""

from clinical_nlp.cli.app import main

if __name__ == "__main__":
    main()
