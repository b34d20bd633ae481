"""A sample database with most of what a real one holds, built fast with generate_series.

Schemas ``sales``, ``hr`` and ``odd "name".s``; ``sales.orders`` has ``rows`` rows
(identity key, foreign key to ``sales.customers``, an index, a check constraint, a
trigger, a column comment); ``sales.customers`` a serial key and a unique email;
``hr.staff`` a self-referencing foreign key; ``hr.badges`` a default from a standalone
sequence; a view, a materialized view, a function, a partitioned table, large objects,
and a role ``shop_reader`` with grants.
"""

from __future__ import annotations

SHOP_SQL = """
do $$ begin
  if not exists (select from pg_roles where rolname = 'shop_reader') then create role shop_reader; end if;
end $$;
create schema sales;
create schema hr;
create schema "odd ""name"".s";
create table sales.customers(id serial primary key, name text not null, email text unique,
                             joined date not null default current_date);
create table sales.orders(id bigint generated always as identity primary key,
                          customer_id int not null references sales.customers(id),
                          amount numeric(10,2) not null default 0 check (amount >= 0),
                          note text, created timestamptz not null default '2024-01-01');
create index orders_customer_idx on sales.orders(customer_id);
comment on column sales.orders.amount is 'in euros';
create function sales.stamp() returns trigger language plpgsql as
  $f$ begin new.note := coalesce(new.note, 'stamped'); return new; end $f$;
create trigger orders_stamp before insert on sales.orders for each row execute function sales.stamp();
create view sales.big_orders as select id, customer_id, amount from sales.orders where amount > 900;
create table sales.events(id int, at date, what text, primary key (id, at)) partition by range (at);
create table sales.events_2024 partition of sales.events for values from ('2024-01-01') to ('2025-01-01');
create table sales.events_2025 partition of sales.events for values from ('2025-01-01') to ('2026-01-01');
create table hr.staff(id int primary key, boss int references hr.staff(id), name text not null);
create sequence hr.badge_seq start 1000;
create table hr.badges(no int primary key default nextval('hr.badge_seq'), staff int references hr.staff(id));
create table "odd ""name"".s"."ta.ble x"(k text primary key, v jsonb);

insert into sales.customers(name, email, joined)
  select 'customer ' || g, 'c' || g || '@example.org', date '2020-01-01' + g % 1000
  from generate_series(1, 20000) g;
insert into sales.orders(customer_id, amount, note, created)
  select 1 + g % 20000, (g * 7919) % 100000 / 100.0, case when g % 3 = 0 then null else md5(g::text) end,
         timestamptz '2024-01-01' + g * interval '1 minute'
  from generate_series(1, {rows}) g;
insert into sales.events select g, date '2024-01-01' + g % 700, 'event ' || g from generate_series(1, 5000) g;
insert into hr.staff select g, case when g > 1 then 1 + g / 10 end, 'staff ' || g from generate_series(1, 3000) g;
insert into hr.badges(staff) select g from generate_series(1, 3000) g;
insert into "odd ""name"".s"."ta.ble x" select 'k' || g, jsonb_build_object('g', g) from generate_series(1, 500) g;
create materialized view sales.customer_totals as
  select customer_id, count(*) n, sum(amount) total from sales.orders group by customer_id;
select lo_from_bytea(0, convert_to(repeat('large object ' || g, 1000), 'UTF8')) from generate_series(1, 5) g;
grant usage on schema sales to shop_reader;
grant select on sales.orders, sales.big_orders to shop_reader;
analyze;
"""


def build_shop(cluster, name: str, rows: int = 120_000) -> None:
    """Create database ``name`` with the sample content (``rows`` orders)."""
    cluster.createdb(name)
    cluster.script(SHOP_SQL.replace("{rows}", str(rows)), db=name)


def large_objects(cluster, db: str) -> list[str]:
    return cluster.psql("select oid || ':' || md5(lo_get(oid)) from pg_largeobject_metadata order by oid",
                        db).splitlines()
