"""Target acquisition: plate solving with astrometry.net, centring by solve-and-correct, and the
co-alignment of several OTAs on one mount. Pure pieces (index table, co-alignment geometry,
result types) import nothing heavy; the solver runs astrometry.net as a bounded subprocess."""
