import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from "typeorm";
// In a project of your own: import { LargeObjectColumn, type LargeObjectValue } from "typeorm-large-object";
import { LargeObjectColumn, type LargeObjectValue } from "../../src";

/** Reads PostgreSQL's bigint (a string in pg) as a number: sizes stay far below 2^53. */
const bigintAsNumber = {
  to: (value: number | null | undefined) => value,
  from: (value: string | number | null) => (value === null ? null : Number(value)),
};

/**
 * A stored file. Column types are explicit because tsx (esbuild) emits no decorator metadata.
 * Clients address a document by `id`; the oid in `content` never leaves the server.
 */
@Entity({ name: "sample_documents" })
export class Document {
  @PrimaryGeneratedColumn({ type: "int" }) id!: number;
  @Column({ type: "text" }) name!: string;
  @Column({ type: "text", name: "content_type" }) contentType!: string;
  /** Kept by the library (`track`) while the content streams; null only after a write it cannot follow. */
  @Column({ type: "bigint", nullable: true, transformer: bigintAsNumber }) size!: number | null;
  /** The SHA-256 of the content, lowercase hex, kept the same way: the download's strong ETag. */
  @Column({ type: "char", length: 64, nullable: true }) sha256!: string | null;
  @CreateDateColumn({ type: "timestamptz", name: "created_at" }) createdAt!: Date;
  @LargeObjectColumn({ track: { size: "size", sha256: "sha256" } }) content!: LargeObjectValue;
}

/** What the API shows of a document: everything but the oid. */
export interface DocumentJson {
  id: number;
  name: string;
  contentType: string;
  size: number | null;
  sha256: string | null;
  createdAt: string;
  url: string;
}

/** The JSON form of a document. */
export function toJson(doc: Document): DocumentJson {
  return {
    id: doc.id,
    name: doc.name,
    contentType: doc.contentType,
    size: doc.size,
    sha256: doc.sha256,
    createdAt: doc.createdAt.toISOString(),
    url: `/api/documents/${doc.id}/content`,
  };
}
