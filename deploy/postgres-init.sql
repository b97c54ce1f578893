-- One server, two databases: Phoenix's and the dashboard's, each with its own owner.
CREATE USER phoenix WITH PASSWORD 'phoenix';
CREATE DATABASE phoenix OWNER phoenix;
CREATE USER dashboard WITH PASSWORD 'dashboard';
CREATE DATABASE dashboard OWNER dashboard;
