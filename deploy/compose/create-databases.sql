-- One database per service (DESIGN §2): each service owns its data.
CREATE DATABASE marketing;
CREATE DATABASE inside_sales;
CREATE DATABASE field_sales;
CREATE DATABASE customer_success;
CREATE DATABASE kpi;
