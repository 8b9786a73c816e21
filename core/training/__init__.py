"""Training and evaluating the network on labelled fundus data (docs/method.md sections 3 and 8).

``datasets`` reads every supported format into records and datasets, ``sampling`` feeds
them to a loop, ``augment`` is the paper's augmentation, ``losses`` and ``metrics`` the
kappa loss and the reported measures, ``train`` and ``evaluate`` the two runs.
"""
