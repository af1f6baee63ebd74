"""The data: sources that hand the kernels row chunks (:mod:`.sources`), and the command line's file
readers (:mod:`.readers`, with the text and Parquet tables of :mod:`.tables`)."""
