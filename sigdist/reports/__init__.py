"""What studies report, read back from MLflow: statistics over seeds (``stats``), the pictures
(``figures``), the runs of a study (``runs``), the grid table (``grid``), and the paper's
Table 1 and Figure 1 (``table1``, ``figure1``)."""
