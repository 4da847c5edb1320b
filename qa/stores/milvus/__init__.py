"""The Milvus store (QA_STORE=milvus): layout, client, writer, reader and the version lifecycle."""
