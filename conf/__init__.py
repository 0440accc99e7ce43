"""molgen's Hydra configs (``conf/`` in the repository, installed as the package ``molgen.conf``).

Importing this package registers the configs' schemas (:mod:`molgen.training.config`)
in Hydra's ConfigStore, which the defaults lists of the yaml files name: whatever
composes ``molgen.conf`` (``molgen train``, ``hydra.initialize_config_module``) imports
it first.
"""

from molgen.training.config import register_schemas

register_schemas()
