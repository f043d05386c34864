"""Analyses that read networks: bounds on pre-activations, increment/decrement marks, the
pull-back of a property through a linearized network, and the cardinality knapsack of the
closed-form input recovery.  The queries use them to build problems; passes never do."""
