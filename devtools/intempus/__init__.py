"""Development commands of the Intempus ⇄ case store sync: ``python run.py intempus demo`` and
``python run.py intempus bench``."""
