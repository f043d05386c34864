"""Adversarial inputs for one input: the search strategies (dnc, direct, exact), input
recovery, float64 validation and shrinking.  A library entry point::

    from attacks import AttackConfig, attack
    result = attack(net, x, label, AttackConfig(linf=1.0, max_pixels=15))
"""
from attacks.config import (STRATEGIES, AttackConfig, DirectConfig, DncConfig, ExactConfig,
                            RecoveryConfig)
from attacks.result import AttackResult, StageFailure
from attacks.search import attack

__all__ = ["STRATEGIES", "AttackConfig", "AttackResult", "DirectConfig", "DncConfig",
           "ExactConfig",
           "RecoveryConfig", "StageFailure", "attack"]
