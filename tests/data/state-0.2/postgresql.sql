--
-- PostgreSQL database dump
--

\restrict MLOgmEckgUTHdf5fU57pVAGdc7ohNRARwotKQNDJQKOOJIQhPiwhVkstufexo9T

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: SCHEMA "public"; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON SCHEMA "public" IS 'standard public schema';


SET default_tablespace = '';

SET default_table_access_method = "heap";

--
-- Name: alert_audit; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE "public"."alert_audit" (
    "alert_id" bigint NOT NULL,
    "seq" bigint NOT NULL,
    "ts_ns" bigint NOT NULL,
    "actor" "text" NOT NULL,
    "action" "text" NOT NULL,
    "detail" "text" DEFAULT ''::"text" NOT NULL
);


--
-- Name: alert_audit_seq_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE "public"."alert_audit" ALTER COLUMN "seq" ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME "public"."alert_audit_seq_seq"
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: alert_notifications; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE "public"."alert_notifications" (
    "alert_id" bigint NOT NULL,
    "step" integer NOT NULL,
    "notifier" "text" NOT NULL,
    "recipient" "text" NOT NULL,
    "ts_ns" bigint NOT NULL
);


--
-- Name: alert_responses; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE "public"."alert_responses" (
    "id" bigint NOT NULL,
    "alert_id" bigint NOT NULL,
    "factory" "text" NOT NULL,
    "actor" "text" NOT NULL,
    "ts_ns" bigint NOT NULL,
    "cause" "text" NOT NULL,
    "corrective_action" "text" NOT NULL
);


--
-- Name: alert_responses_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE "public"."alert_responses" ALTER COLUMN "id" ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME "public"."alert_responses_id_seq"
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: alerts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE "public"."alerts" (
    "id" bigint NOT NULL,
    "factory" "text" NOT NULL,
    "device" "text" NOT NULL,
    "parameter" "text" NOT NULL,
    "rule" "text" NOT NULL,
    "severity" "text" NOT NULL,
    "state" "text" NOT NULL,
    "opened_ns" bigint NOT NULL,
    "updated_ns" bigint NOT NULL,
    "message" "text" NOT NULL,
    "value" double precision,
    "limit_value" double precision,
    "unit" "text" DEFAULT ''::"text" NOT NULL,
    "resolved_ns" bigint,
    "provisional" integer DEFAULT 0 NOT NULL,
    "retroactive" integer DEFAULT 0 NOT NULL,
    "period_start_ns" bigint,
    "assignee" "text",
    "acknowledged_ns" bigint,
    "acknowledged_by" "text",
    "closed_ns" bigint,
    "escalation_step" integer DEFAULT 0 NOT NULL,
    "flaps" integer DEFAULT 0 NOT NULL,
    "template" "text" DEFAULT ''::"text" NOT NULL,
    "params" "text" DEFAULT '{}'::"text" NOT NULL,
    "condition" "text" DEFAULT 'ended'::"text" NOT NULL,
    "condition_since_ns" bigint,
    "ended_ns" bigint,
    "previous_id" bigint,
    "resolution" "text" DEFAULT ''::"text" NOT NULL,
    "current_value" double precision,
    "current_ns" bigint
);


--
-- Name: alerts_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE "public"."alerts" ALTER COLUMN "id" ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME "public"."alerts_id_seq"
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: api_tokens; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE "public"."api_tokens" (
    "token_hash" "text" NOT NULL,
    "user_name" "text" NOT NULL,
    "issued_ns" bigint NOT NULL,
    "expires_ns" bigint NOT NULL
);


--
-- Name: api_users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE "public"."api_users" (
    "name" "text" NOT NULL,
    "role" "text" NOT NULL,
    "factory" "text",
    "password_hash" "text" NOT NULL,
    "created_ns" bigint NOT NULL,
    "disabled" integer DEFAULT 0 NOT NULL,
    "officer" "text"
);


--
-- Name: dead_letters; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE "public"."dead_letters" (
    "id" bigint NOT NULL,
    "received_ns" bigint NOT NULL,
    "topic" "text" NOT NULL,
    "reason" "text" NOT NULL,
    "detail" "text" NOT NULL,
    "location" "text" NOT NULL,
    "payload" "text" NOT NULL,
    "factory" "text" DEFAULT ''::"text" NOT NULL,
    "letter_key" "text" DEFAULT ''::"text" NOT NULL,
    "last_ns" bigint DEFAULT 0 NOT NULL,
    "seen_count" bigint DEFAULT 1 NOT NULL
);


--
-- Name: dead_letters_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE "public"."dead_letters" ALTER COLUMN "id" ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME "public"."dead_letters_id_seq"
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: exceedances; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE "public"."exceedances" (
    "id" bigint NOT NULL,
    "case_id" bigint,
    "factory" "text" NOT NULL,
    "device" "text" NOT NULL,
    "channel" "text" NOT NULL,
    "rule" "text" NOT NULL,
    "averaging" "text" NOT NULL,
    "period_start_ns" bigint NOT NULL,
    "period_end_ns" bigint NOT NULL,
    "average" double precision NOT NULL,
    "limit_value" double precision NOT NULL,
    "unit" "text" NOT NULL,
    "basis" "text" NOT NULL,
    "method" "text" NOT NULL,
    "origin" "text" DEFAULT ''::"text" NOT NULL,
    "retroactive" integer DEFAULT 0 NOT NULL,
    "provisional" integer DEFAULT 0 NOT NULL,
    "outcome" "text",
    "decided_ns" bigint,
    "recorded_ns" bigint NOT NULL
);


--
-- Name: exceedances_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE "public"."exceedances" ALTER COLUMN "id" ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME "public"."exceedances_id_seq"
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: notification_queue; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE "public"."notification_queue" (
    "id" bigint NOT NULL,
    "notifier" "text" NOT NULL,
    "alert_id" bigint NOT NULL,
    "step" integer NOT NULL,
    "event" "text" NOT NULL,
    "recipient" "text" NOT NULL,
    "idempotency_key" "text" NOT NULL,
    "event_json" "text" NOT NULL,
    "parts" "text" NOT NULL,
    "state" "text" NOT NULL,
    "created_ns" bigint NOT NULL,
    "expires_ns" bigint NOT NULL,
    "next_attempt_ns" bigint NOT NULL,
    "attempts" integer DEFAULT 0 NOT NULL,
    "last_attempt_ns" bigint,
    "last_error" "text" DEFAULT ''::"text" NOT NULL,
    "delivered_ns" bigint,
    "lease_until_ns" bigint
);


--
-- Name: notification_queue_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE "public"."notification_queue" ALTER COLUMN "id" ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME "public"."notification_queue_id_seq"
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: rules_pending; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE "public"."rules_pending" (
    "kind" "text" NOT NULL,
    "factory" "text" NOT NULL,
    "device" "text" NOT NULL,
    "channel" "text" NOT NULL,
    "start_ns" bigint NOT NULL,
    "seq" bigint NOT NULL
);


--
-- Name: schema_version; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE "public"."schema_version" (
    "version" integer NOT NULL,
    "name" "text" NOT NULL,
    "applied_ns" bigint NOT NULL
);


--
-- Data for Name: alert_audit; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (1, 1, 1795752000000000000, 'engine', 'opened', 'SO2 above its limit');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (2, 2, 1795752000000000060, 'engine', 'opened', 'no data');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (1, 3, 1795752000000000120, 'olivia', 'acknowledged', 'looking');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (1, 4, 1795752000000000180, 'kk-op', 'note', 'operator response: cause: soot blowing; corrective action: shortened');


--
-- Data for Name: alert_notifications; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: alert_responses; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO "public"."alert_responses" ("id", "alert_id", "factory", "actor", "ts_ns", "cause", "corrective_action") OVERRIDING SYSTEM VALUE VALUES (1, 1, 'kaeng-khoi-biomass', 'kk-op', 1795752000000000180, 'soot blowing', 'shortened');


--
-- Data for Name: alerts; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO "public"."alerts" ("id", "factory", "device", "parameter", "rule", "severity", "state", "opened_ns", "updated_ns", "message", "value", "limit_value", "unit", "resolved_ns", "provisional", "retroactive", "period_start_ns", "assignee", "acknowledged_ns", "acknowledged_by", "closed_ns", "escalation_step", "flaps", "template", "params", "condition", "condition_since_ns", "ended_ns", "previous_id", "resolution", "current_value", "current_ns") OVERRIDING SYSTEM VALUE VALUES (2, 'siam-cassava-starch', 'outfall-1', '*', 'stale', 'warning', 'open', 1795752000000000060, 1795752000000000060, 'no data', NULL, NULL, '', NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, 0, '', '{}', 'ongoing', 1795752000000000060, NULL, NULL, '', NULL, 1795752000000000060);
INSERT INTO "public"."alerts" ("id", "factory", "device", "parameter", "rule", "severity", "state", "opened_ns", "updated_ns", "message", "value", "limit_value", "unit", "resolved_ns", "provisional", "retroactive", "period_start_ns", "assignee", "acknowledged_ns", "acknowledged_by", "closed_ns", "escalation_step", "flaps", "template", "params", "condition", "condition_since_ns", "ended_ns", "previous_id", "resolution", "current_value", "current_ns") OVERRIDING SYSTEM VALUE VALUES (1, 'kaeng-khoi-biomass', 'boiler-1', 'so2', 'limit', 'critical', 'acknowledged', 1795752000000000000, 1795752000000000180, 'SO2 above its limit', 72, 60, 'ppm', NULL, 0, 0, NULL, 'olivia', 1795752000000000120, 'olivia', NULL, 0, 0, '', '{}', 'ongoing', 1795752000000000000, NULL, NULL, '', 72, 1795752000000000000);


--
-- Data for Name: api_tokens; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: api_users; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO "public"."api_users" ("name", "role", "factory", "password_hash", "created_ns", "disabled", "officer") VALUES ('olivia', 'officer', NULL, '$argon2id$v=19$m=65536,t=3,p=4$zBIKy1MWMbAIabb8uMSHTA$Dn3FKkAHh5c4vOGhDUsJ1KLCUwS3HeKeZAEIF47WZX0', 1795752000000000000, 0, NULL);


--
-- Data for Name: dead_letters; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: exceedances; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: notification_queue; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: rules_pending; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: schema_version; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO "public"."schema_version" ("version", "name", "applied_ns") VALUES (1, 'adopt_release_0_1', 1796021403123878041);
INSERT INTO "public"."schema_version" ("version", "name", "applied_ns") VALUES (2, 'tokens_by_expiry', 1796021403143664347);
INSERT INTO "public"."schema_version" ("version", "name", "applied_ns") VALUES (3, 'rules_pending', 1796021403230963825);
INSERT INTO "public"."schema_version" ("version", "name", "applied_ns") VALUES (4, 'dead_letters_keyed', 1796021403339548772);
INSERT INTO "public"."schema_version" ("version", "name", "applied_ns") VALUES (5, 'notification_queue', 1796021403464293366);
INSERT INTO "public"."schema_version" ("version", "name", "applied_ns") VALUES (6, 'cases_and_exceedances', 1796021403541928961);
INSERT INTO "public"."schema_version" ("version", "name", "applied_ns") VALUES (7, 'inbox_and_officer_accounts', 1796021403614446805);


--
-- Name: alert_audit_seq_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('"public"."alert_audit_seq_seq"', 4, true);


--
-- Name: alert_responses_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('"public"."alert_responses_id_seq"', 1, true);


--
-- Name: alerts_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('"public"."alerts_id_seq"', 2, true);


--
-- Name: dead_letters_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('"public"."dead_letters_id_seq"', 1, false);


--
-- Name: exceedances_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('"public"."exceedances_id_seq"', 1, false);


--
-- Name: notification_queue_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('"public"."notification_queue_id_seq"', 1, false);


--
-- Name: alert_audit alert_audit_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY "public"."alert_audit"
    ADD CONSTRAINT "alert_audit_pkey" PRIMARY KEY ("seq");


--
-- Name: alert_notifications alert_notifications_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY "public"."alert_notifications"
    ADD CONSTRAINT "alert_notifications_pkey" PRIMARY KEY ("alert_id", "step", "notifier", "recipient");


--
-- Name: alert_responses alert_responses_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY "public"."alert_responses"
    ADD CONSTRAINT "alert_responses_pkey" PRIMARY KEY ("id");


--
-- Name: alerts alerts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY "public"."alerts"
    ADD CONSTRAINT "alerts_pkey" PRIMARY KEY ("id");


--
-- Name: api_tokens api_tokens_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY "public"."api_tokens"
    ADD CONSTRAINT "api_tokens_pkey" PRIMARY KEY ("token_hash");


--
-- Name: api_users api_users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY "public"."api_users"
    ADD CONSTRAINT "api_users_pkey" PRIMARY KEY ("name");


--
-- Name: dead_letters dead_letters_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY "public"."dead_letters"
    ADD CONSTRAINT "dead_letters_pkey" PRIMARY KEY ("id");


--
-- Name: exceedances exceedances_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY "public"."exceedances"
    ADD CONSTRAINT "exceedances_pkey" PRIMARY KEY ("id");


--
-- Name: notification_queue notification_queue_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY "public"."notification_queue"
    ADD CONSTRAINT "notification_queue_pkey" PRIMARY KEY ("id");


--
-- Name: rules_pending rules_pending_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY "public"."rules_pending"
    ADD CONSTRAINT "rules_pending_pkey" PRIMARY KEY ("kind", "factory", "device", "channel", "start_ns");


--
-- Name: schema_version schema_version_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY "public"."schema_version"
    ADD CONSTRAINT "schema_version_pkey" PRIMARY KEY ("version");


--
-- Name: alert_audit_alert; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "alert_audit_alert" ON "public"."alert_audit" USING "btree" ("alert_id", "seq");


--
-- Name: alert_responses_alert; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "alert_responses_alert" ON "public"."alert_responses" USING "btree" ("alert_id", "id");


--
-- Name: alerts_condition; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "alerts_condition" ON "public"."alerts" USING "btree" ("condition", "id");


--
-- Name: alerts_factory; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "alerts_factory" ON "public"."alerts" USING "btree" ("factory", "id");


--
-- Name: alerts_factory_state; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "alerts_factory_state" ON "public"."alerts" USING "btree" ("factory", "state", "id");


--
-- Name: alerts_key; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "alerts_key" ON "public"."alerts" USING "btree" ("factory", "device", "parameter", "rule", "id");


--
-- Name: alerts_one_ongoing; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "alerts_one_ongoing" ON "public"."alerts" USING "btree" ("factory", "device", "parameter", "rule") WHERE ("condition" = 'ongoing'::"text");


--
-- Name: alerts_opened; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "alerts_opened" ON "public"."alerts" USING "btree" ("opened_ns", "id");


--
-- Name: alerts_rule; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "alerts_rule" ON "public"."alerts" USING "btree" ("rule", "id");


--
-- Name: alerts_severity; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "alerts_severity" ON "public"."alerts" USING "btree" ("severity", "id");


--
-- Name: alerts_state; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "alerts_state" ON "public"."alerts" USING "btree" ("state", "id");


--
-- Name: api_tokens_expires; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "api_tokens_expires" ON "public"."api_tokens" USING "btree" ("expires_ns");


--
-- Name: api_tokens_user; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "api_tokens_user" ON "public"."api_tokens" USING "btree" ("user_name");


--
-- Name: api_users_officer; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "api_users_officer" ON "public"."api_users" USING "btree" ("officer");


--
-- Name: dead_letters_factory; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "dead_letters_factory" ON "public"."dead_letters" USING "btree" ("factory", "last_ns", "id");


--
-- Name: dead_letters_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "dead_letters_key" ON "public"."dead_letters" USING "btree" ("letter_key");


--
-- Name: dead_letters_last; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "dead_letters_last" ON "public"."dead_letters" USING "btree" ("last_ns");


--
-- Name: dead_letters_reason; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "dead_letters_reason" ON "public"."dead_letters" USING "btree" ("reason", "id");


--
-- Name: exceedances_case; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "exceedances_case" ON "public"."exceedances" USING "btree" ("case_id", "id");


--
-- Name: exceedances_period; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "exceedances_period" ON "public"."exceedances" USING "btree" ("factory", "period_start_ns");


--
-- Name: exceedances_series; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "exceedances_series" ON "public"."exceedances" USING "btree" ("factory", "device", "channel", "rule", "period_start_ns");


--
-- Name: notification_queue_alert; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "notification_queue_alert" ON "public"."notification_queue" USING "btree" ("alert_id", "id");


--
-- Name: notification_queue_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "notification_queue_key" ON "public"."notification_queue" USING "btree" ("notifier", "idempotency_key");


--
-- Name: notification_queue_next; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "notification_queue_next" ON "public"."notification_queue" USING "btree" ("notifier", "state", "recipient", "id");


--
-- PostgreSQL database dump complete
--

\unrestrict MLOgmEckgUTHdf5fU57pVAGdc7ohNRARwotKQNDJQKOOJIQhPiwhVkstufexo9T

