ARG base_image
FROM ${base_image}
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
ARG user_id
ARG group_id
USER ${user_id}:${group_id}
