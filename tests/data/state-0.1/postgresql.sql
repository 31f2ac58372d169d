--
-- PostgreSQL database dump
--

\restrict qNTnFOGoqnegcF9KmFmRHf5bQHzastWDKqyZscHzejiPR19I5dpweufFanYulBR

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
    "params" "text" DEFAULT '{}'::"text" NOT NULL
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
    "disabled" integer DEFAULT 0 NOT NULL
);


--
-- Data for Name: alert_audit; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (1, 1, 1795752000000000000, 'engine', 'opened', 'so2 75 ppm above 60 ppm');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (1, 2, 1795752010000000000, 'sam', 'assigned', 'olivia');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (1, 3, 1795752020000000000, 'olivia', 'acknowledged', 'calling the plant');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (1, 4, 1795752030000000000, 'olivia', 'note', 'scrubber pump tripped');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (2, 5, 1795752040000000000, 'engine', 'opened', 'dust provisional');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (2, 6, 1795752050000000000, 'engine', 'confirmed', 'hour valid');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (2, 7, 1795752060000000000, 'engine', 'escalated', 'step 1');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (2, 8, 1795752070000000000, 'engine', 'resolved', '');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (2, 9, 1795752080000000000, 'sam', 'closed', 'reviewed');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (3, 10, 1795752090000000000, 'engine', 'opened', 'cod high');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (3, 11, 1795752100000000000, 'engine', 'resolved', 'back under the limit');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (3, 12, 1795752110000000000, 'engine', 'reopened', 'condition back');
INSERT INTO "public"."alert_audit" ("alert_id", "seq", "ts_ns", "actor", "action", "detail") OVERRIDING SYSTEM VALUE VALUES (1, 13, 1795752035000000000, 'kk-op', 'note', 'operator response: filter bag torn');


--
-- Data for Name: alert_notifications; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO "public"."alert_notifications" ("alert_id", "step", "notifier", "recipient", "ts_ns") VALUES (1, 0, 'email', 'duty@example.org', 1795752001000000000);
INSERT INTO "public"."alert_notifications" ("alert_id", "step", "notifier", "recipient", "ts_ns") VALUES (1, 0, 'webhook', '*', 1795752001000000000);
INSERT INTO "public"."alert_notifications" ("alert_id", "step", "notifier", "recipient", "ts_ns") VALUES (2, 1, 'email', 'supervisor@example.org', 1795752060000000000);


--
-- Data for Name: alert_responses; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO "public"."alert_responses" ("id", "alert_id", "factory", "actor", "ts_ns", "cause", "corrective_action") OVERRIDING SYSTEM VALUE VALUES (1, 1, 'kaeng-khoi-biomass', 'kk-op', 1795752035000000000, 'filter bag torn', 'bags replaced, stack tested');


--
-- Data for Name: alerts; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO "public"."alerts" ("id", "factory", "device", "parameter", "rule", "severity", "state", "opened_ns", "updated_ns", "message", "value", "limit_value", "unit", "resolved_ns", "provisional", "retroactive", "period_start_ns", "assignee", "acknowledged_ns", "acknowledged_by", "closed_ns", "escalation_step", "flaps", "template", "params") OVERRIDING SYSTEM VALUE VALUES (2, 'kaeng-khoi-biomass', 'boiler-1', 'dust', 'limit', 'critical', 'closed', 1795752040000000000, 1795752080000000000, 'dust provisional', 130, 120, 'mg/m3', 1795752070000000000, 0, 0, 1795752000000000000, NULL, NULL, NULL, 1795752080000000000, 1, 0, '', '{}');
INSERT INTO "public"."alerts" ("id", "factory", "device", "parameter", "rule", "severity", "state", "opened_ns", "updated_ns", "message", "value", "limit_value", "unit", "resolved_ns", "provisional", "retroactive", "period_start_ns", "assignee", "acknowledged_ns", "acknowledged_by", "closed_ns", "escalation_step", "flaps", "template", "params") OVERRIDING SYSTEM VALUE VALUES (3, 'siam-cassava-starch', 'outfall-1', 'cod', 'limit', 'critical', 'open', 1795752090000000000, 1795752110000000000, 'cod high', 150, 120, '', NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, 0, 1, '', '{}');
INSERT INTO "public"."alerts" ("id", "factory", "device", "parameter", "rule", "severity", "state", "opened_ns", "updated_ns", "message", "value", "limit_value", "unit", "resolved_ns", "provisional", "retroactive", "period_start_ns", "assignee", "acknowledged_ns", "acknowledged_by", "closed_ns", "escalation_step", "flaps", "template", "params") OVERRIDING SYSTEM VALUE VALUES (1, 'kaeng-khoi-biomass', 'boiler-1', 'so2', 'limit', 'critical', 'acknowledged', 1795752000000000000, 1795752035000000000, 'so2 75 ppm above 60 ppm', 75, 60, 'ppm', NULL, 0, 0, NULL, 'olivia', 1795752020000000000, 'olivia', NULL, 0, 0, 'exceedance', '{"parameter": "so2", "value": "75"}');


--
-- Data for Name: api_tokens; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO "public"."api_tokens" ("token_hash", "user_name", "issued_ns", "expires_ns") VALUES ('dc26e29187c380b5fbc6c41d18121ae84d91700a12efcf97b10c12d5c77036f1', 'olivia', 1795752000000000000, 4949352000000000000);
INSERT INTO "public"."api_tokens" ("token_hash", "user_name", "issued_ns", "expires_ns") VALUES ('1954c5bbc8a45d71631ba37e529b2d5295c2018a17eb03289ce2b95a043cd1e8', 'kk-op', 1795752000000000000, 4949352000000000000);
INSERT INTO "public"."api_tokens" ("token_hash", "user_name", "issued_ns", "expires_ns") VALUES ('05679c759455af8176940a7c711660ee6bd17e9e2f2fae9701808f7dec8e1b58', 'olivia', 1795752000000000000, 1795752060000000000);


--
-- Data for Name: api_users; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO "public"."api_users" ("name", "role", "factory", "password_hash", "created_ns", "disabled") VALUES ('olivia', 'officer', NULL, '$argon2id$v=19$m=65536,t=3,p=4$2IdyrZtO5K+AFbXryp0pWQ$swWTaMnYNWcvdhlggno9keV5SQgLd3V0o/+R1eC+paU', 1795752000000000000, 0);
INSERT INTO "public"."api_users" ("name", "role", "factory", "password_hash", "created_ns", "disabled") VALUES ('sam', 'supervisor', NULL, '$argon2id$v=19$m=65536,t=3,p=4$uxPDrQlMSP82eqYCIO/Enw$DFpnsovDZoIFaf80Zrv+0sL26oK36TBUuSRtagPyKk0', 1795752000000000000, 0);
INSERT INTO "public"."api_users" ("name", "role", "factory", "password_hash", "created_ns", "disabled") VALUES ('kk-op', 'operator', 'kaeng-khoi-biomass', '$argon2id$v=19$m=65536,t=3,p=4$8Fb7+DRx/bqB/Qs1N3aa1w$ro2SFw8r7ZEKd2Bslxf48E2Y07hS+1j6bulRI2ZWGW8', 1795752000000000000, 0);
INSERT INTO "public"."api_users" ("name", "role", "factory", "password_hash", "created_ns", "disabled") VALUES ('gone', 'officer', NULL, '$argon2id$v=19$m=65536,t=3,p=4$FVxjR4RnM1NWbP0o68gAYQ$My4/aYZ5AEyy4PXLsuLJFb7EC2ZrlKxZZ5PKkXg/93g', 1795752000000000000, 1);


--
-- Name: alert_audit_seq_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('"public"."alert_audit_seq_seq"', 13, true);


--
-- Name: alert_responses_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('"public"."alert_responses_id_seq"', 1, true);


--
-- Name: alerts_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('"public"."alerts_id_seq"', 3, true);


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
-- Name: alert_audit_alert; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "alert_audit_alert" ON "public"."alert_audit" USING "btree" ("alert_id", "seq");


--
-- Name: alert_responses_alert; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "alert_responses_alert" ON "public"."alert_responses" USING "btree" ("alert_id", "id");


--
-- Name: alerts_key; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "alerts_key" ON "public"."alerts" USING "btree" ("factory", "device", "parameter", "rule", "id");


--
-- Name: alerts_one_active; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "alerts_one_active" ON "public"."alerts" USING "btree" ("factory", "device", "parameter", "rule") WHERE ("state" = ANY (ARRAY['open'::"text", 'acknowledged'::"text"]));


--
-- Name: alerts_state; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "alerts_state" ON "public"."alerts" USING "btree" ("state", "id");


--
-- Name: api_tokens_user; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "api_tokens_user" ON "public"."api_tokens" USING "btree" ("user_name");


--
-- PostgreSQL database dump complete
--

\unrestrict qNTnFOGoqnegcF9KmFmRHf5bQHzastWDKqyZscHzejiPR19I5dpweufFanYulBR

