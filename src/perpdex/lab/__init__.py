"""The loss-waterfall lab: liquidation maps and policy comparisons, run exactly on copies of the exchange."""
