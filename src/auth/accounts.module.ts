import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AccountsService } from './accounts.service';
import { Company } from './company.entity';
import { PersonalAccessToken } from './personal-access-token.entity';
import { User } from './user.entity';

/** Companies, users and tokens, shared by the HTTP auth and the account CLI. */
@Module({
  imports: [TypeOrmModule.forFeature([Company, User, PersonalAccessToken])],
  providers: [AccountsService],
  exports: [AccountsService],
})
export class AccountsModule {}
