-- Store each event once: "Event" keeps one row per event (its data, and its position in each of its rooms),
-- and "RoomEvent" is each room's narrow, gapless log of references to it. Existing copies are folded into one
-- row per eventId: nothing stored is lost, and every room keeps its sequence numbers.

-- CreateTable
CREATE TABLE "RoomEvent" (
    "tenantId" TEXT NOT NULL,
    "namespace" TEXT NOT NULL,
    "room" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "eventId" TEXT NOT NULL,

    CONSTRAINT "RoomEvent_pkey" PRIMARY KEY ("tenantId","namespace","room","seq")
);

INSERT INTO "RoomEvent" ("tenantId", "namespace", "room", "seq", "eventId")
SELECT "tenantId", "namespace", "room", "seq", "eventId" FROM "Event";

ALTER TABLE "Event" RENAME TO "EventCopy";
ALTER INDEX "Event_pkey" RENAME TO "EventCopy_pkey";
ALTER INDEX "Event_ts_idx" RENAME TO "EventCopy_ts_idx";

-- CreateTable
CREATE TABLE "Event" (
    "id" TEXT NOT NULL,
    "tenantId" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "data" JSONB NOT NULL,
    "ts" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "targets" TEXT[],
    "seqs" INTEGER[],

    CONSTRAINT "Event_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Event_ts_idx" ON "Event"("ts");

INSERT INTO "Event" ("id", "tenantId", "type", "data", "ts", "targets", "seqs")
SELECT "eventId", min("tenantId"), min("type"), (array_agg("data"))[1], min("ts"),
       array_agg("namespace" || '|' || "room" ORDER BY "namespace", "room"),
       array_agg("seq" ORDER BY "namespace", "room")
FROM "EventCopy" GROUP BY "eventId";

DROP TABLE "EventCopy";
