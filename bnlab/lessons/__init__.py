"""One package per notebook: its experiments, its figures and panels, its exercises, its claims.

The core of bnlab never imports a lesson; ``bnlab.course`` lists them all."""
