"""Pure data and its validation: topology, names and marks, shapes, link options, lab files,
drawings, and the types of kernel facts. Imports nothing of vethwrap but errors and steps."""
